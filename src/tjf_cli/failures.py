"""How a failure reaches the user: one ``Error: …`` line on stderr, and the exit code.

Exit codes: 0 ok; 1 the user's to fix (bad input, every 4xx answer, the client's own setup:
kubeconfig, certificate, configuration); 2 usage errors (click's) and everything that is not
the user's doing (the API unreachable, a 5xx answer, a bug). ``run --wait`` exits with the
job's own exit code instead (see :mod:`tjf_cli.waiting`).

Messages come from the errors themselves (the core's and the API client's are written to be
acted on); this module only adds what the client knows and they cannot: which command to run
next, and where the API URL came from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from tjf_core.errors import TjfError

__all__ = ["EXIT_INTERNAL", "EXIT_USER", "CliFailure", "describe_failure"]

EXIT_USER = 1
EXIT_INTERNAL = 2


class CliFailure(click.ClickException):
    """A failure, already worded: click prints ``Error: <message>`` and exits with the code."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        # click declares exit_code a class variable, but it reads it from the instance.
        self.exit_code = exit_code  # type: ignore[misc]


def _answered(error: TjfError) -> bool:
    """Whether the server answered with this error (the client sets the instance's status)."""
    return "http_status" in vars(error)


def _notes(error: BaseException, message: str) -> str:
    notes = [note for note in getattr(error, "__notes__", ()) if isinstance(note, str)
             and note.removeprefix("request id: ") not in message]  # said already
    return f" ({'; '.join(notes)})" if notes else ""


def _exit_code(error: TjfError) -> int:
    from tjf_core.errors import ConfigurationError, RuntimeUnavailableError

    if isinstance(error, RuntimeUnavailableError):
        return EXIT_INTERNAL
    if 400 <= error.http_status < 500:
        return EXIT_USER
    if isinstance(error, ConfigurationError) and not _answered(error):
        return EXIT_USER  # this machine's setup: the user can fix it
    return EXIT_INTERNAL


def describe_failure(error: BaseException, *, prog: str, url_source: str | None = None,
                     what: str | None = None) -> tuple[str, int]:
    """The one-line message and the exit code for ``error``.

    ``url_source`` says where the API URL came from; ``what`` names the input being read
    (``jobs.yaml``) for input errors.
    """
    # Imported here: this module is imported on every start, and failing is rare.
    from tjf_core.errors import (
        AlreadyExistsError,
        InvalidInputError,
        NotFoundError,
        QuotaExceededError,
        RuntimeUnavailableError,
        TjfError,
    )

    if isinstance(error, InvalidInputError):
        text = " ".join(str(error).split())  # one line, whatever the input held
        prefix = f"{what}: " if what else ""
        return f"{prefix}{text}", EXIT_USER
    if isinstance(error, TjfError):
        message = " ".join(str(error).split())
        if isinstance(error, NotFoundError):
            message += f"; see `{prog} list` for the tool's jobs"
        elif isinstance(error, AlreadyExistsError):
            message += f"; pick another name, or delete it first with `{prog} delete`"
        elif isinstance(error, QuotaExceededError):
            message += f"; see `{prog} quota` for the tool's quota and its use"
        elif isinstance(error, RuntimeUnavailableError) and not _answered(error) and url_source:
            message += f"; check the URL (it comes from {url_source}), or try again later"
        elif isinstance(error, RuntimeUnavailableError):
            message += "; try again later"
        code = _exit_code(error)
        if code == EXIT_INTERNAL:
            message += _notes(error, message)
        return message, code
    if isinstance(error, OSError):
        name = f" {error.filename!r}" if error.filename else ""
        return f"cannot use{name}: {error.strerror or error}", EXIT_USER
    return (f"internal error ({type(error).__name__}: {error}); run with --debug for the "
            "details, and please report it"), EXIT_INTERNAL
