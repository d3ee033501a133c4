"""The root command ``toolforge-jobs``: its options, its help, and how failures end a run.

:class:`JobsGroup` catches every exception a command lets out and turns it into one ``Error:``
line and an exit code (:mod:`tjf_cli.failures`); with ``--debug`` (or ``TOOLFORGE_DEBUG=1``)
the traceback comes first. Run as ``toolforge jobs`` (``TOOLFORGE_CLI=1``, set by the
``toolforge`` wrapper), help names the command that way and leaves ``--debug`` out.

Only click and the standard library are imported here and in the command modules' top
levels: ``--help`` must start fast. Everything else is imported when a command runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import click

from tjf_cli import commands, completion, jobsfile, run
from tjf_cli.failures import CliFailure, describe_failure
from tjf_cli.session import PROG, Session, command_name, is_true

__all__ = ["cli", "debug_option", "main"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _wrapped() -> bool:
    """Whether the ``toolforge`` wrapper runs us (as ``toolforge jobs``)."""
    return is_true(os.environ.get("TOOLFORGE_CLI"))


class _DebugOption(click.Option):
    """``--debug``: not shown in help under the ``toolforge`` wrapper (it has its own)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        return None if _wrapped() else super().get_help_record(ctx)


def _set_debug(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        root = ctx.find_root()
        if root.obj is None:
            root.obj = Session.from_process()
        root.obj.debug = True


def debug_option(function: Any) -> Any:
    """Accept ``--debug`` here too (people put it at the end of the line)."""
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_debug, cls=_DebugOption,
                        help="Show the details (tracebacks, the API URL) of what goes wrong.")(
        function)


class JobsGroup(click.Group):
    """The root command: the wrapper's name, and every failure as one ``Error:`` line."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        if parent is None and _wrapped():
            info_name = "toolforge jobs"
        return super().make_context(info_name, args, parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order a newcomer needs them, not sorted

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click's own (a closed pipe included: `list | head` is no failure)
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except Exception as error:
            session = ctx.obj if isinstance(ctx.obj, Session) else None
            if session.debug if session else is_true(os.environ.get("TOOLFORGE_DEBUG")):
                import traceback

                traceback.print_exc()
            source = None
            if session is not None and session.has_config:
                source = session.config.api_url_source
            message, code = describe_failure(error, prog=command_name(ctx), url_source=source)
            raise CliFailure(message, exit_code=code) from None


@click.group(name=PROG, cls=JobsGroup, context_settings=_CONTEXT)
@debug_option
@click.version_option(package_name="tjf", prog_name=PROG, message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run jobs of a Toolforge tool: once, on a schedule, or continuously.

    Run it as the tool (`become TOOLNAME`). Start with `run --help`, or write the tool's jobs
    into a jobs.yaml file and `load` it. Every command has --help.
    """
    if ctx.obj is None:
        ctx.obj = Session.from_process()
    ctx.call_on_close(ctx.obj.close)


for _command in (run.run_command, commands.show, commands.list_jobs, commands.logs,
                 commands.restart, commands.delete, commands.flush, jobsfile.load,
                 jobsfile.dump, commands.images, commands.quota, completion.completion):
    cli.add_command(debug_option(_command))


def main(args: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code."""
    try:
        cli.main(args=list(args) if args is not None else None, prog_name=PROG)
    except SystemExit as done:
        code = done.code
    return code if isinstance(code, int) else (0 if code is None else 1)
