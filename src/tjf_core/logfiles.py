"""Reading a job's log files from the tool's home, without ever leaving that home.

Jobs with filelog append their output to files in the tool's home (NFS on Toolforge); the
service reads them for ``logs``. The file names come from the user's job definition, so every
file is opened first and then checked: the path the kernel actually opened (``/proc/self/fd``,
which no symlink swap can fool) must lie inside the home, and it must be a regular file (a FIFO
or a device could block or leak). Only then is anything read.

Reading: the last N lines (``tail_lines``), or everything new as it is written
(``follow_lines``), stdout's file then stderr's when they differ. Waiting is injected
(``sleep``), never done by a bare loop.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tjf_core.errors import ForbiddenError, NotFoundError

__all__ = ["follow_lines", "open_in_home", "tail_lines"]


def _inside(path: str, home: str) -> bool:
    return path == home or path.startswith(home.rstrip("/") + "/")


def open_in_home(home: PurePosixPath, path: str) -> BinaryIO:
    """Open ``path`` (absolute, or relative to ``home``) for reading, only if it is in ``home``.

    Raises NotFoundError when the file does not exist (yet) and ForbiddenError when it
    resolves outside the home (a ``..`` or a symlink) or is not a regular file.
    """
    full = Path(home, path)
    real_home = os.path.realpath(home)
    if not _inside(os.path.realpath(full), real_home):
        raise ForbiddenError(f"log file {path!r} is outside the tool's home: refused")
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"log file {path!r} does not exist (yet)") from None
    except OSError as error:
        raise ForbiddenError(f"log file {path!r} cannot be read: {error.strerror}") from None
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}") if os.path.isdir("/proc/self/fd") else None
        if opened is not None and not _inside(opened, real_home):
            raise ForbiddenError(f"log file {path!r} is outside the tool's home: refused")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ForbiddenError(f"log file {path!r} is not a regular file: refused")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _distinct(home: PurePosixPath, paths: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for path in paths:
        seen.setdefault(str(PurePosixPath(home, path)), None)
    return list(seen)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\n")


def tail_lines(home: PurePosixPath, paths: Sequence[str], *, lines: int | None) -> Iterator[str]:
    """The last ``lines`` lines (all when None) of each distinct file, in order.

    Every file is checked now (NotFoundError when none exists, ForbiddenError for one that may
    not be read); each is opened again when its turn comes, so an iterator that is dropped
    unread holds no open file.
    """
    found = []
    for name in _distinct(home, paths):
        handle = _open_or_none(home, name)
        if handle is not None:
            handle.close()
            found.append(name)
    if not found:
        raise NotFoundError("the job has written no log file yet")
    return _tail(home, found, lines)


def _tail(home: PurePosixPath, names: list[str], lines: int | None) -> Iterator[str]:
    for name in names:
        handle = _open_or_none(home, name)
        if handle is None:
            continue  # removed since it was checked
        with handle:
            kept, rest = _last(handle, lines)
        if rest:
            kept.append(rest)  # a last line still being written counts as a line
        for raw in kept:
            yield _decode(raw)


def _open_or_none(home: PurePosixPath, path: str) -> BinaryIO | None:
    try:
        return open_in_home(home, path)
    except NotFoundError:
        return None


def follow_lines(
    home: PurePosixPath, paths: Sequence[str], *, lines: int | None,
    sleep: Callable[[float], None], interval: float, keep_going: Callable[[], bool],
) -> Iterator[str]:
    """The last ``lines`` lines, then new lines as they are written, while ``keep_going()``.

    Files that do not exist yet are looked for again on every round; a file that shrinks
    (truncated) or is replaced (rotated by renaming) is read again from its start.
    """
    names = _distinct(home, paths)
    handles: dict[str, BinaryIO] = {}
    partial: dict[str, bytes] = {}
    try:
        for name in names:
            handle = _open_or_none(home, name)
            if handle is not None:
                handles[name] = handle
                kept, partial[name] = _last(handle, lines)
                for raw in kept:
                    yield _decode(raw)
        while True:
            running = keep_going()  # looked at before reading: the final lines are not lost
            for name in names:
                if name not in handles:
                    found = _open_or_none(home, name)
                    if found is None:
                        continue
                    handles[name] = found
                yield from _new_lines(handles[name], partial, name)
                if _replaced(name, handles[name]):
                    yield from _reopen(home, name, handles, partial)
            if not running:
                for rest in partial.values():
                    if rest:
                        yield _decode(rest)
                return
            sleep(interval)
    finally:
        for handle in handles.values():
            handle.close()


def _last(handle: BinaryIO, lines: int | None) -> tuple[deque[bytes], bytes]:
    """The last ``lines`` complete lines, and the unterminated line after them (or b"")."""
    kept: deque[bytes] = deque(maxlen=lines) if lines is not None else deque()
    rest = b""
    for raw in handle:
        if raw.endswith(b"\n"):
            kept.append(raw)
        else:
            rest = raw  # only the last line of a file can lack its newline
    return kept, rest


def _replaced(path: str, handle: BinaryIO) -> bool:
    """Whether ``path`` now names another file than the open one (rotated by renaming)."""
    try:
        now = os.stat(path)
    except OSError:
        return False  # gone for now: keep reading the open one
    opened = os.fstat(handle.fileno())
    return (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino)


def _reopen(home: PurePosixPath, name: str, handles: dict[str, BinaryIO],
            partial: dict[str, bytes]) -> Iterator[str]:
    found = _open_or_none(home, name)
    if found is None:
        return
    handles.pop(name).close()
    handles[name] = found
    rest = partial.pop(name, b"")
    if rest:
        yield _decode(rest)  # the old file's unfinished last line will not be finished
    yield from _new_lines(found, partial, name)


def _new_lines(handle: BinaryIO, partial: dict[str, bytes], name: str) -> Iterator[str]:
    if os.fstat(handle.fileno()).st_size < handle.tell():
        handle.seek(0)  # truncated or replaced in place: start again
        partial[name] = b""
    chunk = partial.get(name, b"") + handle.read()
    *complete, rest = chunk.split(b"\n")
    partial[name] = rest
    for raw in complete:
        yield _decode(raw)
