"""The commands that look at and act on existing jobs: show, list, logs, restart, delete, flush,
and the tool's images and quota.

Each command asks the session's backend for ONE operation and prints the answer with
:mod:`tjf_cli.output`; failures are worded by the root command. Job names complete in the
shell (:func:`~tjf_cli.completion.complete_job_names`).
"""

from __future__ import annotations

from collections.abc import Callable

import click

from tjf_cli import output
from tjf_cli.completion import complete_job_names
from tjf_cli.session import command_name, session_of

__all__ = ["delete", "flush", "images", "list_jobs", "logs", "quota", "restart", "show"]


def _format_option(*choices: str, default: str = "normal") -> click.Option:
    # ``-o`` as in the original client; what each form prints is in the command's help.
    return click.Option(["-o", "--output", "form"], type=click.Choice(choices),
                        default=default, show_default=True, help="Output format.")


def _with_format(*choices: str,
                 default: str = "normal") -> Callable[[click.Command], click.Command]:
    def decorate(command: click.Command) -> click.Command:
        command.params.append(_format_option(*choices, default=default))
        return command

    return decorate


@_with_format("normal", "json", "yaml")
@click.command("show")
@click.argument("name", shell_complete=complete_job_names)
@click.pass_context
def show(ctx: click.Context, name: str, form: str) -> None:
    """Show a job: its definition, and how it is doing."""
    session = session_of(ctx)
    job = session.backend().get(name)
    if form != "normal":
        click.echo(output.document(output.job_document(job), form=form), nl=False)
        return
    for line in output.detail_lines(output.job_details(job), width=session.width,
                                    colour=session.colour):
        session.echo(line)


@_with_format("normal", "long", "name", "json", "yaml")
@click.command("list")
@click.pass_context
def list_jobs(ctx: click.Context, form: str) -> None:
    """List the tool's jobs with their status.

    normal: name, type and status; long: image and command too; name: only the names, one a
    line; json and yaml: everything, as the jobs API gives it.
    """
    session = session_of(ctx)
    listed = session.backend().list()
    for warning in listed.warnings:
        click.echo(f"Warning: {warning}", err=True)
    jobs = listed.jobs
    if form in ("json", "yaml"):
        click.echo(output.document([output.job_document(job) for job in jobs], form=form),
                   nl=False)
    elif form == "name":
        for job in jobs:
            click.echo(job.spec.name)
    elif not jobs:
        prog = command_name(ctx)
        click.echo(f"The tool has no jobs: create one with `{prog} run`, or many with "
                   f"`{prog} load`.", err=True)
    else:
        for line in output.jobs_table(jobs, long=form == "long", width=session.width,
                                      colour=session.colour):
            session.echo(line)


@click.command("logs")
@click.argument("name", shell_complete=complete_job_names)
@click.option("-f", "--follow", is_flag=True,
              help="Keep showing new output while the job runs (Ctrl-C stops).")
@click.option("-l", "--lines", type=click.IntRange(min=1), metavar="N",
              help="Only the last N lines.")
@click.pass_context
def logs(ctx: click.Context, name: str, follow: bool, lines: int | None) -> None:
    """Show a job's output.

    The output of the job NAME: from its log files when it has them (the default), else
    from its newest pod.
    """
    from tjf_core.errors import NotFoundError

    backend = session_of(ctx).backend()
    printed = 0
    try:
        for line in backend.logs(name, lines=lines, follow=follow):
            click.echo(line, color=True)  # the job's output, as it wrote it
            printed += 1
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None
    except NotFoundError:
        backend.get(name)  # a missing job is the error; a job without log files is not
    if not printed:
        click.echo(f"Job {name!r} has no output yet.", err=True)


@click.command("restart")
@click.argument("name", shell_complete=complete_job_names)
@click.pass_context
def restart(ctx: click.Context, name: str) -> None:
    """Restart a scheduled or continuous job.

    A scheduled job NAME runs now (besides its schedule); a continuous one gets new pods.
    """
    session_of(ctx).backend().restart(name)
    click.echo(f"Restarted job {name!r}.")


@click.command("delete")
@click.argument("name", shell_complete=complete_job_names)
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete a job.

    The job NAME is stopped and deleted; one that does not exist is only warned about.
    """
    from tjf_core.errors import NotFoundError

    try:
        session_of(ctx).backend().delete(name)
    except NotFoundError:
        click.echo(f"Warning: job {name!r} does not exist: nothing to delete.", err=True)
        return
    click.echo(f"Deleted job {name!r}.")


@click.command("flush")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def flush(ctx: click.Context, yes: bool) -> None:
    """Delete every job of the tool.

    On a terminal it first says which jobs and asks; --yes does not ask.
    """
    session = session_of(ctx)
    backend = session.backend()
    if session.stdin_tty and not yes:
        names = [job.spec.name for job in backend.list().jobs]
        if not names:
            click.echo("The tool has no jobs: nothing to delete.")
            return
        shown = ", ".join(names) if len(names) <= 10 else ", ".join(names[:10]) + ", ..."
        if not click.confirm(f"Delete all {len(names)} job{'s' if len(names) > 1 else ''} of "
                             f"tool {backend.tool!r} ({shown})?", default=False, err=True):
            click.echo("Nothing was deleted.", err=True)
            ctx.exit(1)
    backend.flush()
    click.echo(f"Deleted every job of tool {backend.tool!r}.")


@_with_format("normal", "json")
@click.command("images")
@click.pass_context
def images(ctx: click.Context, form: str) -> None:
    """List the images jobs can use.

    Give a NAME to `run --image` (or `image:` in a jobs.yaml).
    """
    session = session_of(ctx)
    found = session.backend().images()
    if form == "json":
        click.echo(output.document(found, form="json"), nl=False)
        return
    for line in output.images_lines(found, width=session.width, colour=session.colour):
        session.echo(line)


@_with_format("normal", "json")
@click.command("quota")
@click.pass_context
def quota(ctx: click.Context, form: str) -> None:
    """Show the tool's quota and how much of it is used."""
    session = session_of(ctx)
    categories = session.backend().quota()
    if form == "json":
        click.echo(output.document(categories, form="json"), nl=False)
        return
    for line in output.quota_lines(categories, width=session.width, colour=session.colour):
        session.echo(line)
