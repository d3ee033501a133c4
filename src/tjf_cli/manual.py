"""The command reference of ``docs/cli.md``, written from the click definitions themselves.

:func:`reference` renders every command, argument and option (flags, value, choices, range,
default, help) as Markdown, so the manual cannot drift from the program: a test compares the
block between the markers of ``docs/cli.md`` with it, and ``python -m tjf_cli.manual
docs/cli.md`` rewrites that block.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click

from tjf_cli.session import PROG

__all__ = ["BEGIN", "END", "reference", "update_manual"]

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m tjf_cli.manual docs/cli.md) -->"
END = "<!-- END GENERATED REFERENCE -->"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _help(text: str) -> list[str]:
    """A docstring as Markdown: click's ``\\b`` blocks become code blocks."""
    lines: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if paragraph.startswith("\b\n"):
            lines.extend(["```", *paragraph[2:].splitlines(), "```", ""])
        else:
            lines.extend([" ".join(paragraph.split()), ""])
    return lines


def _option_row(option: click.Option, ctx: click.Context) -> str:
    flags = ", ".join(f"`{flag}`" for flag in [*option.opts, *option.secondary_opts])
    value = "" if option.is_flag else f"`{option.make_metavar(ctx)}`"
    notes = []
    if option.required:
        notes.append("required")
    if isinstance(option.type, click.IntRange):
        low, high = option.type.min, option.type.max
        notes.append(f"{low} to {high}" if high is not None else f"at least {low}")
    if option.show_default and option.default is not None:
        notes.append(f"default: {option.default}")
    return f"| {flags} | {_cell(value)} | {_cell(option.help or '')}" + (
        f" ({', '.join(notes)})" if notes else "") + " |"


def _command(root: click.Context, name: str, command: click.Command, *, prog: str) -> list[str]:
    ctx = click.Context(command, info_name=name, parent=root)
    usage = " ".join([prog, name, *command.collect_usage_pieces(ctx)])
    lines = [f"### `{name}`", "", "```", usage, "```", ""]
    lines.extend(_help(command.help or ""))
    arguments = [param for param in command.params if isinstance(param, click.Argument)]
    for argument in arguments:
        choices = ""
        if isinstance(argument.type, click.Choice):
            choices = ": one of " + ", ".join(f"`{choice}`" for choice in argument.type.choices)
        lines.append(f"Argument `{argument.make_metavar(ctx)}`{choices}.")
        lines.append("")
    options = [param for param in command.get_params(ctx) if isinstance(param, click.Option)]
    if options:
        lines.extend(["| Option | Value | Meaning |", "|---|---|---|"])
        lines.extend(_option_row(option, ctx) for option in options)
        lines.append("")
    return lines


def reference(group: click.Group, *, prog: str = PROG) -> str:
    """The Markdown reference of every command of ``group``."""
    root = click.Context(group, info_name=prog, **group.context_settings)
    lines = ["## Command reference", ""]
    lines.extend(_help(group.help or ""))
    lines.extend(["| Option | Value | Meaning |", "|---|---|---|"])
    lines.extend(_option_row(option, root) for option in group.get_params(root)
                 if isinstance(option, click.Option))
    lines.append("")
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        if command is not None:
            lines.extend(_command(root, name, command, prog=prog))
    return "\n".join(lines).rstrip() + "\n"


def update_manual(path: Path, group: click.Group) -> bool:
    """Rewrite the generated block of the manual at ``path``; whether it changed."""
    text = path.read_text(encoding="utf-8")
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"{path}: the markers {BEGIN!r} and {END!r} are missing")
    updated = f"{head}{BEGIN}\n{reference(group)}{END}{tail}"
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    from tjf_cli.cli import cli

    for argument in sys.argv[1:]:
        print(f"{argument}: {'updated' if update_manual(Path(argument), cli) else 'up to date'}")
