"""``toolforge-jobs run``: create a job from flags, and optionally wait for it to end.

The flags are written into a jobs.yaml entry and read by the core's one converter
(:func:`~tjf_core.convert.job_from_yaml_entry`), so a job made here and the same job in a
jobs.yaml are equal, and every rule is the model's. Its problems are given back under the flag
the user typed (``--mem: …``). Only what is about the flags themselves is checked here: two
flags that exclude each other, and waiting for a job that never ends.

``--wait [SECONDS]`` polls until the job succeeded or failed and exits with the job's own exit
code (2 if the time ran out); ``--follow`` streams the job's output meanwhile.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from tjf_cli.failures import EXIT_INTERNAL, CliFailure
from tjf_cli.session import Session, command_name, session_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tjf_cli.backend import Backend
    from tjf_core.model import JobSpec
    from tjf_http.client import RemoteJob

__all__ = ["DEFAULT_WAIT", "run_command", "spec_from_flags", "wait_for_end"]

#: Seconds ``--wait`` waits when given no number.
DEFAULT_WAIT = 600
_SAID = re.compile(r"exited with code|BackoffLimitExceeded")
#: jobs.yaml key (as the converter names it in problems) -> the flag that sets it.
_FLAG_OF = {"name": "NAME", "health-check": "--health-check-path",
            "health-check.script": "--health-check-script",
            "health-check.path": "--health-check-path", "filelog": "--no-filelog"}


def _flag(path: str) -> str:
    return _FLAG_OF.get(path) or f"--{path}"


def spec_from_flags(values: dict[str, Any]) -> JobSpec:
    """The job the flags describe; InvalidJobError names the flags that are wrong."""
    from tjf_core.convert import job_from_yaml_entry
    from tjf_core.errors import InvalidInputError, InvalidJobError, Problem

    entry: dict[str, Any] = {"name": values["name"], "command": values["command"],
                             "image": values["image"]}
    for key in ("schedule", "timezone", "concurrency", "replicas", "port", "retry", "mem",
                "cpu", "emails", "mount", "timeout", "filelog_stdout", "filelog_stderr"):
        if values.get(key) is not None:
            entry[key.replace("_", "-")] = values[key]
    if values.get("continuous"):
        entry["continuous"] = True
    if values.get("no_filelog"):
        entry["no-filelog"] = True
    if values.get("health_check_script") is not None:
        entry["health-check"] = {"type": "script", "script": values["health_check_script"]}
    elif values.get("health_check_path") is not None:
        entry["health-check"] = {"type": "http", "path": values["health_check_path"]}
    try:
        return job_from_yaml_entry(entry).spec
    except InvalidInputError as error:
        raise InvalidJobError([Problem(_flag(problem.path), problem.message)
                               for problem in error.problems]) from None


#: The API's field names (the server's problems) -> the flags, where they differ.
_FLAG_OF_FIELD = {"name": "NAME", "memory": "--mem", "filelog": "--no-filelog",
                  "kind": "--schedule/--continuous", "health_check": "--health-check-path",
                  "health_check.script": "--health-check-script",
                  "health_check.path": "--health-check-path"}


def _create(backend: Backend, spec: JobSpec) -> RemoteJob:
    """Run ``spec``; the server's problems (image, limits) named by the flags as well."""
    from tjf_core.errors import InvalidInputError, Problem

    try:
        return backend.run(spec)
    except InvalidInputError as error:
        problems = [Problem(_FLAG_OF_FIELD.get(p.path) or "--" + p.path.replace("_", "-"),
                            p.message) if p.path else p for p in error.problems]
        raise InvalidInputError(problems) from None


def _exclusive(values: dict[str, Any], first: str, second: str, why: str) -> None:
    if values.get(first.lstrip("-").replace("-", "_")) and values.get(
            second.lstrip("-").replace("-", "_")):
        raise click.UsageError(f"{first} and {second} cannot be used together: {why}")


@click.command("run")
@click.argument("name")
@click.option("--command", required=True, metavar="CMD",
              help="The shell command line to run, e.g. './update.sh --all' (quote it).")
@click.option("--image", required=True, metavar="IMAGE",
              help="The container image: a name the `images` command lists, e.g. python3.11.")
@click.option("--schedule", metavar="CRON",
              help="Run on this schedule: five cron fields ('*/10 * * * *') or @hourly, "
                   "@daily, @weekly, @monthly, @yearly.")
@click.option("--timezone", metavar="TZ",
              help="Time zone of --schedule, e.g. Europe/Berlin (default UTC).")
@click.option("--concurrency", type=click.Choice(["forbid", "allow", "replace"]),
              help="What a scheduled run does while the previous one still runs "
                   "(default forbid: it is skipped).")
@click.option("--continuous", is_flag=True,
              help="Keep the command running (restarted when it stops), e.g. a bot or a "
                   "web service.")
@click.option("--replicas", type=click.IntRange(min=1), metavar="N",
              help="How many copies of a continuous job run (default 1).")
@click.option("--port", type=click.IntRange(1, 65535), metavar="PORT",
              help="A continuous job's TCP port, reachable in the cluster as NAME:PORT "
                   "(the command gets it as $PORT).")
@click.option("--health-check-script", metavar="CMD",
              help="A continuous job is restarted when this command fails.")
@click.option("--health-check-path", metavar="PATH",
              help="A continuous job with --port is restarted when an HTTP GET of this "
                   "path (e.g. /healthz) fails.")
@click.option("--no-filelog", is_flag=True,
              help="Do not append the output to files in the tool's home (see `logs`).")
@click.option("-o", "--filelog-stdout", metavar="FILE",
              help="Append the standard output to FILE (default NAME.out in the tool's home).")
@click.option("-e", "--filelog-stderr", metavar="FILE",
              help="Append the standard error to FILE (default NAME.err in the tool's home).")
@click.option("--retry", type=click.IntRange(0, 5), metavar="0-5",
              help="Run a failed one-off or scheduled job again, up to this many times "
                   "(default 0).")
@click.option("--mem", metavar="QUANTITY",
              help="Memory for the job, e.g. 512Mi or 1Gi (default 512Mi).")
@click.option("--cpu", metavar="QUANTITY",
              help="CPU for the job, e.g. 0.5 or 250m (default 0.5).")
@click.option("--emails", type=click.Choice(["none", "all", "onfinish", "onfailure"]),
              help="Mail the tool's maintainers about the job: never (default), on every "
                   "change, when it finishes, when it fails.")
@click.option("--mount", type=click.Choice(["all", "none"]),
              help="Whether the job sees the shared storage (the tool's home included); "
                   "default all.")
@click.option("--timeout", type=click.IntRange(min=1), metavar="SECONDS",
              help="Stop a one-off or scheduled run after this many seconds.")
@click.option("--wait", type=click.IntRange(min=1), is_flag=False, flag_value=DEFAULT_WAIT,
              default=None, metavar="[SECONDS]",
              help=f"Wait for the one-off job to end (at most SECONDS, default {DEFAULT_WAIT}) "
                   "and exit with its exit code; 2 if the time runs out.")
@click.option("--follow", is_flag=True,
              help="Show the one-off job's output while waiting (implies --wait).")
@click.pass_context
def run_command(ctx: click.Context, /, **values: Any) -> None:
    """Create a job and start it.

    Without --schedule or --continuous the job runs once. Examples:

    \b
      run hello --command 'echo hi' --image bookworm --wait
      run daily --command ./update.sh --image python3.11 --schedule @daily
      run bot --command ./bot --image node18 --continuous
    """
    _exclusive(values, "--schedule", "--continuous",
               "a job runs on a schedule or all the time, not both")
    _exclusive(values, "--health-check-script", "--health-check-path",
               "give one health check")
    waiting = values["wait"] is not None or values["follow"]
    if waiting and (values["schedule"] or values["continuous"]):
        raise click.UsageError("--wait and --follow are only for one-off jobs (without "
                               "--schedule or --continuous): the others do not end")
    spec = spec_from_flags(values)
    session = session_of(ctx)
    backend = session.backend()
    # Output already there, not to be shown again. Pod logs start empty with each new pod. Log
    # files are appended to by every run: read them before the new run can write (from the
    # finished job it replaces), else just after creating (files left by a deleted job).
    with_files = values["follow"] and spec.filelog
    before = _output_so_far(backend, spec.name) if with_files else None
    job = _create(backend, spec)
    if with_files and before is None:
        before = _output_so_far(backend, spec.name)
    prog = command_name(ctx)
    if job.image_state == "deprecated":
        click.echo(f"Warning: image {spec.image!r} is deprecated: see `{prog} images` for the "
                   "current ones", err=True)
    if not waiting:
        click.echo(f"Created job {spec.name!r}; see it with `{prog} show {spec.name}`.")
        return
    timeout = values["wait"] or DEFAULT_WAIT
    click.echo(f"Created job {spec.name!r}; waiting for it to end (at most {timeout} s).",
               err=True)
    wait_for_end(session, backend, spec.name, timeout=timeout, follow=values["follow"],
                 prog=prog, already=before or ())


def _output_so_far(backend: Backend, name: str) -> list[str] | None:
    """What the job ``name`` wrote so far; None when there is no such job."""
    from tjf_core.errors import NotFoundError

    try:
        return list(backend.logs(name))
    except NotFoundError:
        return None


def wait_for_end(session: Session, backend: Backend, name: str, *, timeout: int,
                 follow: bool, prog: str, already: Sequence[str] = ()) -> None:
    """Wait for the one-off job ``name`` to end; CliFailure with its exit code if it failed.

    With ``follow``, its output is copied as it comes, except the lines ``already`` there
    before it started (earlier runs of the same name append to the same log files).
    """
    from tjf_cli.waiting import LogPump, job_exit_code, wait_for_job

    pump = None
    if follow:
        pump = LogPump(lambda following: backend.logs(name, follow=following),
                       lambda line: click.echo(line, color=True),
                       already=already, retry_every=session.poll_first)
        pump.start()
    line = _StatusLine(session, name, timeout) if session.stderr_tty and not follow else None
    result = None
    try:
        result = wait_for_job(lambda: backend.get(name), timeout=timeout,
                              monotonic=session.monotonic, sleep=session.sleep,
                              first=session.poll_first, maximum=session.poll_max,
                              on_poll=line.poll if line else None,
                              on_tick=line.tick if line else None)
    except KeyboardInterrupt:
        if line:
            line.clear()
        click.echo(f"Stopped waiting; job {name!r} keeps running: see `{prog} show {name}`.",
                   err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        # A job that ended lets the pump read its last lines; else the pump is left behind.
        grace = session.follow_grace if result is not None and result.ended else 0.0
        if pump is not None and not pump.finish(grace) and grace:
            session.say_debug("the log stream did not end in time")
    if line:
        line.clear()
    if pump is not None and pump.error is not None:
        session.say_debug(f"the log stream stopped: {pump.error!r}")
    job = result.job
    if not result.ended:
        raise CliFailure(
            f"job {name!r} did not end within {timeout} s (status: {job.status_short}); it "
            f"keeps running: see `{prog} show {name}`, or stop it with `{prog} delete {name}`",
            exit_code=EXIT_INTERNAL)
    if job.status.get("short") == "succeeded":
        click.echo(f"Job {name!r} succeeded.", err=True)
        return
    code = job_exit_code(job)
    # The exit code is said below, and a used-up backoff limit is what "failed" means.
    reasons = "; ".join(str(message) for message in job.status.get("messages") or ()
                        if not _SAID.search(str(message)))
    message = f"job {name!r} failed" + (f" with exit code {code}" if code else "")
    message += (f" ({reasons})" if reasons else "") + f"; see its output: `{prog} logs {name}`"
    raise CliFailure(message, exit_code=code if code and 1 <= code <= 255 else 1)


class _StatusLine:
    """One line on the terminal's stderr, redrawn while waiting."""

    def __init__(self, session: Session, name: str, timeout: int) -> None:
        self._session = session
        self._name = name
        self._timeout = timeout
        self._status = "starting"

    def poll(self, job: RemoteJob, waited: float) -> None:
        self._status = job.status_short
        self.tick(waited)

    def tick(self, waited: float) -> None:
        text = (f"Job {self._name!r}: {self._status}, {int(waited)} s of {self._timeout} s "
                "(Ctrl-C stops waiting, not the job)")
        width = self._session.width - 1
        # color=True: click would strip the escape codes it cannot tell are for a terminal.
        click.echo("\r\x1b[2K" + text[:width], err=True, nl=False, color=True)

    def clear(self) -> None:
        click.echo("\r\x1b[2K", err=True, nl=False, color=True)
