"""Shell completion for bash, zsh and fish: commands, flags, choices, and job names.

Click completes commands, flags and choices by itself when the shell calls the program with
``_TOOLFORGE_JOBS_COMPLETE=<shell>_complete``; ``completion SHELL`` prints the script that
makes the shell do so. Job names are asked of the jobs API (with a short timeout, and never
an error: a completion that fails offers nothing); ``load --job`` offers the names in the
file being loaded.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

from tjf_cli.session import PROG, Session

__all__ = ["complete_file_job_names", "complete_job_names", "completion"]

#: Seconds a completion may wait for the API.
COMPLETION_TIMEOUT = 5.0
_SHELLS = ("bash", "zsh", "fish")


def complete_job_names(ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
    """The tool's job names that start with ``incomplete``."""
    root = ctx.find_root()
    session = root.obj if isinstance(root.obj, Session) else Session.from_process()
    try:
        jobs = session.backend(timeout=COMPLETION_TIMEOUT).list().jobs
    except Exception:  # a completion offers nothing rather than failing
        return []
    finally:
        session.close()
    return [CompletionItem(job.spec.name, help=job.status_short) for job in jobs
            if job.spec.name.startswith(incomplete)]


def complete_file_job_names(ctx: click.Context, param: click.Parameter,
                            incomplete: str) -> list[CompletionItem]:
    """The job names of the jobs.yaml given to ``load``."""
    from pathlib import Path

    import yaml

    # While a flag's value is being completed, click has not given FILE its value yet.
    file = ctx.params.get("file") or (ctx.args[0] if ctx.args else None)
    if file is None:
        return []
    try:
        data = yaml.safe_load(Path(str(file)).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return []
    names = [entry.get("name") for entry in data or () if isinstance(entry, dict)] \
        if isinstance(data, list) else []
    return [CompletionItem(name) for name in names
            if isinstance(name, str) and name.startswith(incomplete)]


@click.command("completion")
@click.argument("shell", type=click.Choice(_SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print a shell's completion script.

    The script makes SHELL complete commands, flags and job names.

    \b
    bash: add to ~/.bashrc:  eval "$(toolforge-jobs completion bash)"
    zsh:  add to ~/.zshrc:   eval "$(toolforge-jobs completion zsh)"
    fish: add to ~/.config/fish/config.fish:  toolforge-jobs completion fish | source
    """
    from click.shell_completion import get_completion_class

    complete_var = "_" + PROG.replace("-", "_").upper() + "_COMPLETE"
    completer = get_completion_class(shell)
    if completer is None:  # pragma: no cover - click knows all three
        raise click.UsageError(f"no completion for {shell}")
    click.echo(completer(ctx.find_root().command, {}, PROG, complete_var).source())
