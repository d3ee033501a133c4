"""Processes of the local runtime: start one as a container would, stop its whole group.

A job's command runs as ``/bin/sh -c -- CMD`` in a session (and so a process group) of its
own, whose id is the shell's pid: stopping the job signals the group, grandchildren included.
A process is known by its pid AND its start time (``/proc/<pid>/stat``), so a pid the kernel
reused for another process is never taken for ours: the group of a runtime that died is only
stopped when its leader is gone or still the same process.

The memory limit is the address-space limit (RLIMIT_AS), set by the shell itself before it
runs the command (``ulimit -v``, then ``exec``): no ``preexec_fn`` in the runtime's threads,
and no window in which the command runs unlimited. Log files in the tool's home are opened by
the runtime, not by the command's shell, and only when they resolve inside the home
(walked from the home without following a symlink: :mod:`tjf_core.logfiles`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from tjf_core.errors import ForbiddenError
from tjf_core.logfiles import open_fd_in_home

__all__ = [
    "Process",
    "User",
    "exit_code",
    "group_alive",
    "is_ours",
    "open_append",
    "open_in_home_for_append",
    "signal_group",
    "spawn",
    "start_ticks",
    "stop_groups",
]

#: O_CLOEXEC: the runtime's other children must not inherit one job's log file.
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOCTTY | os.O_CLOEXEC
_LIMITED = 'ulimit -v "$0" || exit 126; exec "$@"'


@attrs.frozen
class User:
    """Who a job runs as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def named(cls, name: str) -> User:
        """The unix user ``name``; ForbiddenError when there is none."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ForbiddenError(f"there is no unix user {name!r} to run the job as: create "
                                 "it, or change LocalSettings.run_as") from None
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return cls(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)

    @property
    def other(self) -> bool:
        """Whether running as this user means switching (the runtime is someone else)."""
        return self.uid != os.geteuid()

    def own(self, fd: int, path: str) -> None:
        """Check that a log file opened for this user is its own; give it one we just made.

        The runtime opens log files with its own rights: a file of someone else (a hard link
        to a file the tool may not write) must not be appended to on the tool's behalf.
        """
        if not self.other:
            return
        found = os.fstat(fd)
        if found.st_uid == self.uid:
            return
        if found.st_uid == os.geteuid() and found.st_size == 0 and found.st_nlink == 1:
            os.fchown(fd, self.uid, self.gid)  # made just now: the tool must own its logs
            return
        raise ForbiddenError(f"log file {path!r} does not belong to {self.name}: refused")


@attrs.define(eq=False)
class Process:
    """One running job process (the leader of its process group)."""

    popen: subprocess.Popen[bytes]
    pid: int
    #: The start time in clock ticks after boot; None where /proc cannot say.
    ticks: int | None
    #: A descriptor that becomes readable when the process exits (None: not supported).
    pidfd: int | None

    def exited(self) -> bool:
        """Whether the process has exited, WITHOUT reaping it: its pid stays ours."""
        if self.popen.returncode is not None:
            return True
        try:
            found = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return found is not None

    def reap(self) -> int:
        """Kill what is left of the group (as a container's end kills all in it), then reap.

        Returns the exit code as Kubernetes reports it (128 + signal for a signal).
        """
        if self.popen.returncode is None:
            signal_group(self.pid, signal.SIGKILL)
        code = self.popen.wait()
        self.close()
        return exit_code(code)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def exit_code(returncode: int) -> int:
    """A Popen return code as a container's exit code: a signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdout: int, stderr: int,
    memory_bytes: int | None, user: User | None = None,
) -> Process:
    """Start ``argv`` in its own session (as ``user``), its address space limited."""
    if memory_bytes is not None:
        kibibytes = max(memory_bytes // 1024, 1)
        argv = ["/bin/sh", "-c", _LIMITED, str(kibibytes), *argv]
    switch = user if user is not None and user.other else None
    popen = subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=stdout,
        stderr=stderr, start_new_session=True, close_fds=True,
        user=None if switch is None else switch.uid,
        group=None if switch is None else switch.gid,
        extra_groups=None if switch is None else list(switch.groups),
    )
    try:
        pidfd: int | None = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        pidfd = None  # an old kernel: the supervisor looks every tick instead
    return Process(popen=popen, pid=popen.pid, ticks=start_ticks(popen.pid), pidfd=pidfd)


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot), or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: read after the last ')'.
    fields = text[text.rfind(b")") + 2:].split()
    try:
        return int(fields[19])  # field 22 of stat(5)
    except (IndexError, ValueError):
        return None


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; nothing when the group is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_ours(pid: int, ticks: int | None) -> bool:
    """Whether the group a previous runtime recorded as (``pid``, ``ticks``) is still there.

    Its leader is not our child, so it cannot be reaped here (its new parent does that). A
    group whose leader pid is now another process (its start time differs) is not ours.
    """
    now_ticks = start_ticks(pid)
    if now_ticks is not None:
        return ticks is None or now_ticks == ticks
    return group_alive(pid)  # the leader is gone; what it started may not be


def stop_groups(pgids: Sequence[int], *, grace: float) -> None:
    """SIGTERM every group, wait up to ``grace`` seconds for them to go, SIGKILL the rest."""
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(group_alive(pgid) for pgid in pgids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pgid in pgids:
        signal_group(pgid, signal.SIGKILL)


def open_append(path: Path) -> int:
    """Open a file of the runtime's own (a pod log) for appending."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, _APPEND, 0o640)


def open_in_home_for_append(home: Path, path: str) -> int:
    """Open log file ``path`` (absolute, or relative to ``home``) for appending, inside ``home``.

    Created (0644, before the umask) when missing; walked as
    :func:`tjf_core.logfiles.open_fd_in_home` walks it, so ForbiddenError when it leaves the
    home (``..``, a symlink anywhere under the home), its directory is missing, or it is not
    a regular file.
    """
    return open_fd_in_home(home, path, flags=_APPEND, mode=0o644)
