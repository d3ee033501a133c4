"""``load`` and ``dump``: the tool's jobs as a jobs.yaml file, both ways.

``load FILE`` reads the whole file first (every problem of every entry is reported at once,
YAML syntax errors with their line and column) and then sends the jobs to the API's apply
route, which validates them again against the cluster (images, limits) and changes nothing
unless every job is valid; unchanged jobs keep running. The plan it carried out (or, with
``--dry-run``, would carry out) is printed: create, update with the fields that changed,
delete, unchanged. Entries with ``wait: true`` are waited for after the apply, in file order.

``dump`` writes what ``load`` reads back as the same jobs, so ``dump`` then ``load`` changes
nothing.
"""

from __future__ import annotations

import sys

import click

from tjf_cli import output
from tjf_cli.completion import complete_file_job_names
from tjf_cli.failures import CliFailure, describe_failure
from tjf_cli.run import DEFAULT_WAIT, wait_for_end
from tjf_cli.session import command_name, session_of

__all__ = ["dump", "load"]


def _read(file: str) -> str:
    from pathlib import Path

    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliFailure(f"{file}: is not UTF-8 text; save it as UTF-8", exit_code=1) from None
    except OSError as error:
        raise CliFailure(f"cannot read {file}: {error.strerror}", exit_code=1) from None


@click.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--job", metavar="NAME", shell_complete=complete_file_job_names,
              help="Only load this job of the file; the tool's other jobs stay as they are.")
@click.option("--dry-run", is_flag=True, help="Only show what would change.")
@click.pass_context
def load(ctx: click.Context, file: str, job: str | None, dry_run: bool) -> None:
    """Make the tool's jobs what a jobs.yaml file says.

    FILE is a jobs.yaml (- reads standard input). Jobs in the file are created, or updated
    where they differ (they restart); unchanged jobs keep running; the tool's jobs that are
    not in the file are deleted. Nothing at all changes if any entry is invalid. A jobs.yaml
    is a list of jobs, e.g.:

    \b
      - name: update-index
        command: ./update-index.sh
        image: python3.11
        schedule: "@daily"
    """
    from tjf_core.convert import load_jobs_file
    from tjf_core.errors import InvalidInputError

    session = session_of(ctx)
    prog = command_name(ctx)
    shown = "stdin" if file == "-" else file
    try:
        entries = load_jobs_file(_read(file))
    except InvalidInputError as error:
        message, code = describe_failure(error, prog=prog, what=shown)
        raise CliFailure(f"{message}; nothing was changed", exit_code=code) from None
    names = [entry.spec.name for entry in entries]
    if job is not None and job not in names:
        raise CliFailure(f"--job {job!r}: {shown} defines no job of that name; it defines "
                         f"{', '.join(names) or 'no jobs'}", exit_code=1)
    backend = session.backend()
    try:
        plan = backend.apply([entry.spec for entry in entries], only=job, dry_run=dry_run)
    except InvalidInputError as error:
        message, code = describe_failure(error, prog=prog, what=shown)
        raise CliFailure(f"{message}; nothing was changed", exit_code=code) from None
    for line in output.plan_lines(plan, source=shown, colour=session.colour):
        session.echo(line)
    if dry_run:
        return
    changed = {str(entry["name"]) for entry in plan.get("jobs", [])
               if entry.get("action") in ("create", "update")}
    for entry in entries:
        if entry.wait and entry.spec.name in changed:
            click.echo(f"Waiting for job {entry.spec.name!r} to end (wait: true in {shown}).",
                       err=True)
            wait_for_end(session, backend, entry.spec.name, timeout=DEFAULT_WAIT,
                         follow=False, prog=prog)


@click.command("dump")
@click.option("-f", "--file", "target", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write to FILE (replacing it) instead of standard output.")
@click.pass_context
def dump(ctx: click.Context, target: str | None) -> None:
    """Write the tool's jobs as a jobs.yaml file.

    `load` reads it back as the same jobs: dump, edit, load.
    """
    from tjf_core.convert import dump_jobs_file

    listed = session_of(ctx).backend().list()
    for warning in listed.warnings:
        click.echo(f"Warning: {warning}; it is not in the dump", err=True)
    text = dump_jobs_file([job.spec for job in listed.jobs])
    if target is None or target == "-":
        click.echo(text, nl=False)
        return
    from pathlib import Path

    try:
        Path(target).write_text(text, encoding="utf-8")
    except OSError as error:
        raise CliFailure(f"cannot write {target}: {error.strerror}", exit_code=1) from None
    count = len(listed.jobs)
    click.echo(f"Wrote {count} job{'s' if count != 1 else ''} to {target}.", err=True)
