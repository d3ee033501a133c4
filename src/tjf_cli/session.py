"""One run of the command line client: its environment, its clock and its connection.

Everything a command reads from outside the arguments comes through :class:`Session`: the
environment variables, the home directory, the effective uid (where a local API's socket is),
whether stdin/stdout/stderr are terminals, the clocks and sleeping (so waiting is testable
without waiting), and the backend, connected on first use (``--help`` never connects, nor
reads any file). Tests hand a Session of their own to click as ``obj``.

Importing this module stays cheap: it runs on every start, ``--help`` included.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pathlib import Path

    from tjf_cli.backend import Backend
    from tjf_cli.config import CliConfig

__all__ = ["PROG", "Session", "command_name", "is_true", "session_of"]

#: The command's name when installed on its own.
PROG = "toolforge-jobs"


def is_true(value: str | None) -> bool:
    """Whether an environment variable is set to something that means yes."""
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Session:
    """What one run reads from its surroundings (see the module docstring)."""

    def __init__(
        self, *, environ: Mapping[str, str], home: Path,
        system_dir: Path | None = None,
        stdin_tty: bool = False, stdout_tty: bool = False, stderr_tty: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utc_now,
        poll_first: float = 0.5, poll_max: float = 5.0, follow_grace: float = 10.0,
        width: int | None = None, uid: int | None = None,
    ) -> None:
        self.environ = environ
        self.home = home
        #: The effective uid, for finding a local API's socket (None: this process's).
        self._uid = uid
        self.system_dir = system_dir
        self.stdin_tty, self.stdout_tty, self.stderr_tty = stdin_tty, stdout_tty, stderr_tty
        self.monotonic, self.sleep, self.now = monotonic, sleep, now
        #: Waiting polls after ``poll_first`` seconds, then less often, at most every
        #: ``poll_max``; a followed log gets ``follow_grace`` to end by itself.
        self.poll_first, self.poll_max, self.follow_grace = poll_first, poll_max, follow_grace
        self._width = width
        self.debug = is_true(environ.get("TOOLFORGE_DEBUG"))
        self._config: CliConfig | None = None
        self._backend: Backend | None = None

    @classmethod
    def from_process(cls) -> Session:
        """The session of this process: its environment and its standard streams."""
        def tty(stream: object) -> bool:
            isatty = getattr(stream, "isatty", None)
            return bool(isatty and isatty())

        from pathlib import Path  # not at the top: --help does without it

        return cls(environ=os.environ, home=Path.home(), stdin_tty=tty(sys.stdin),
                   stdout_tty=tty(sys.stdout), stderr_tty=tty(sys.stderr))

    # --- output --------------------------------------------------------------------------

    @property
    def colour(self) -> bool:
        """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
        return self.stdout_tty and not self.environ.get("NO_COLOR")

    @property
    def stderr_colour(self) -> bool:
        return self.stderr_tty and not self.environ.get("NO_COLOR")

    @property
    def width(self) -> int:
        """Columns for tables: the terminal's, else 80."""
        if self._width is not None:
            return self._width
        if self.stdout_tty:
            import shutil

            return max(shutil.get_terminal_size((80, 24)).columns, 40)
        return 80

    # --- the backend ---------------------------------------------------------------------

    @property
    def uid(self) -> int:
        return os.geteuid() if self._uid is None else self._uid

    @property
    def has_config(self) -> bool:
        return self._config is not None

    @property
    def config(self) -> CliConfig:
        if self._config is None:
            from tjf_cli.config import SYSTEM_DIR, load_config

            self._config = load_config(self.environ, home=self.home,
                                       system_dir=self.system_dir or SYSTEM_DIR)
        return self._config

    def backend(self, *, timeout: float | None = None) -> Backend:
        """The backend, connected on first use."""
        if self._backend is None:
            from tjf_cli.backend import connect, with_local_api

            self._config = with_local_api(self.config, environ=self.environ, uid=self.uid)
            self._backend = connect(self._config, environ=self.environ, home=self.home,
                                    now=self.now(), timeout=timeout)
            self.say_debug(f"jobs API: {self.config.api_url} (from {self.config.api_url_source})"
                           f", mode {self.config.mode}, tool {self._backend.tool}, "
                           f"configuration files read: {list(self.config.files) or 'none'}")
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def echo(self, text: str, *, err: bool = False) -> None:
        """Print a line that may hold colour (kept only where :attr:`colour` says)."""
        click.echo(text, err=err, color=self.stderr_colour if err else self.colour)

    def say_debug(self, text: str) -> None:
        if self.debug:
            click.echo(f"debug: {text}", err=True)


def session_of(ctx: click.Context) -> Session:
    """The session of the command being run (made by the root command)."""
    session = ctx.find_root().obj
    if not isinstance(session, Session):  # pragma: no cover - the root command sets it
        raise RuntimeError("no session: the root command did not run")
    return session


def command_name(ctx: click.Context | None = None) -> str:
    """How the user calls this program, for hints (``toolforge-jobs`` or ``toolforge jobs``)."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return PROG
    return ctx.find_root().info_name or PROG
