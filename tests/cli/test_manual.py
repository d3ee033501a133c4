"""docs/cli.md documents every command and flag: its reference is generated from click's."""

from __future__ import annotations

from pathlib import Path

import click

from tjf_cli.cli import cli
from tjf_cli.manual import BEGIN, END, reference, update_manual

MANUAL = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_manuals_reference_is_the_programs() -> None:
    text = MANUAL.read_text(encoding="utf-8")
    generated = text.partition(BEGIN)[2].partition(END)[0]
    assert generated == "\n" + reference(cli), (
        "docs/cli.md is out of date: run `python -m tjf_cli.manual docs/cli.md`")


def test_every_command_and_flag_is_in_the_reference() -> None:
    text = reference(cli)
    root = click.Context(cli, info_name="toolforge-jobs")
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        assert command is not None
        assert f"### `{name}`" in text
        for param in command.params:
            for flag in getattr(param, "opts", ()):
                if flag.startswith("-"):
                    assert f"`{flag}`" in text, (name, flag)


def test_update_rewrites_only_the_block(tmp_path: Path) -> None:
    manual = tmp_path / "cli.md"
    manual.write_text(f"intro\n{BEGIN}\nstale\n{END}\noutro\n")
    assert update_manual(manual, cli) is True
    assert manual.read_text() == f"intro\n{BEGIN}\n{reference(cli)}{END}\noutro\n"
    assert update_manual(manual, cli) is False
