"""Opening and reading a job's log files in the tool's home, without ever leaving that home.

Jobs with filelog append their output to files in the tool's home (NFS on Toolforge); the
runtime creates them and the service reads them for ``logs``. The file names come from the
user's job definition and the home's contents are the tool's to change at any moment, so a
path is never checked first and opened later: it is walked one component at a time from a
descriptor of the home, each directory opened relative to the one before without following
symbolic links. A tool that swaps a directory for a symlink mid-walk gets a refusal, never a
file created or read elsewhere (``/etc/nologin`` when the runtime runs as root). The file
must be a regular file (a FIFO or a device could block or leak) before anything is read.

Reading: the last N lines (``tail_lines``), or everything new as it is written
(``follow_lines``), stdout's file then stderr's when they differ. Waiting is injected
(``sleep``), never done by a bare loop.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import PurePath, PurePosixPath
from typing import BinaryIO

from tjf_core.errors import ForbiddenError, NotFoundError

__all__ = ["follow_lines", "open_fd_in_home", "open_in_home", "tail_lines"]

#: O_PATH: a directory the runtime may search but not list can still be walked through.
_DIRECTORY = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)
#: O_NONBLOCK: opening a FIFO must not wait for its other end (it is refused right after).
_FILE = os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK


def _refused(path: str) -> ForbiddenError:
    return ForbiddenError(f"log file {path!r} is outside the tool's home: refused (a log file "
                          "path must stay inside the home and may not go through symbolic "
                          "links)")


def _components(home: PurePath, path: str) -> list[str]:
    """The names to walk from the home to ``path``; ForbiddenError when it leaves the home."""
    wanted = PurePosixPath(path)
    if wanted.is_absolute():
        for base in (PurePosixPath(home), PurePosixPath(os.path.realpath(home))):
            if wanted == base or base in wanted.parents:
                wanted = wanted.relative_to(base)
                break
        else:
            raise _refused(path)
    names = list(wanted.parts)  # PurePosixPath has already dropped "." and empty parts
    if ".." in names:
        raise _refused(path)
    if "\0" in path:
        raise ForbiddenError(f"log file {path!r} contains a NUL character: refused")
    return names


def open_fd_in_home(home: PurePath, path: str, *, flags: int, mode: int = 0o644) -> int:
    """Open ``path`` (absolute, or relative to ``home``) inside ``home``: a blocking descriptor.

    ``flags`` are those of :func:`os.open` (``O_RDONLY`` to read; ``O_WRONLY | O_APPEND |
    O_CREAT`` to append, creating the file with ``mode``). The home itself may be reached
    through symlinks (it is the runtime's setting); nothing under it may. Raises
    ForbiddenError when the path leaves the home (``..``, an absolute path elsewhere, any
    symlink) or is not a regular file, and, when reading, NotFoundError when it does not
    exist (yet).
    """
    names = _components(home, path)
    reading = flags & os.O_ACCMODE == os.O_RDONLY
    verb = "read" if reading else "written"
    if not names:
        raise ForbiddenError(f"log file {path!r} is the tool's home itself, not a file: refused")
    try:
        parent = os.open(home, _DIRECTORY & ~os.O_NOFOLLOW)
    except FileNotFoundError:
        if reading:
            raise NotFoundError(f"log file {path!r} does not exist (yet): the tool's home "
                                f"{str(home)!r} does not exist") from None
        raise ForbiddenError(f"log file {path!r} cannot be written: the tool's home "
                             f"{str(home)!r} does not exist") from None
    except OSError as error:
        raise ForbiddenError(f"log file {path!r} cannot be {verb}: the tool's home "
                             f"{str(home)!r}: {error.strerror}") from None
    try:
        for index, name in enumerate(names):
            last = index == len(names) - 1
            try:
                if last:
                    fd = os.open(name, flags | _FILE, mode, dir_fd=parent)
                else:
                    fd = os.open(name, _DIRECTORY, dir_fd=parent)
            except FileNotFoundError:
                if reading:
                    raise NotFoundError(f"log file {path!r} does not exist (yet)") from None
                missing = "/".join(names[:index if last else index + 1]) or "."
                raise ForbiddenError(f"log file {path!r} cannot be written: directory "
                                     f"{missing!r} does not exist in the tool's home: create "
                                     "it first") from None
            except OSError as error:
                raise _translated(error, path=path, name=name, parent=parent, verb=verb) from None
            os.close(parent)
            parent = fd
        return _regular(parent, path)
    except BaseException:
        os.close(parent)
        raise


def _translated(error: OSError, *, path: str, name: str, parent: int,
                verb: str) -> ForbiddenError:
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            found = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError:
            return _refused(path)  # changed under us: assume the worst
        if stat.S_ISLNK(found.st_mode):
            return _refused(path)
        if error.errno == errno.ENOTDIR:
            return ForbiddenError(f"log file {path!r} cannot be {verb}: {name!r} in its path "
                                  "is not a directory")
    if error.errno == errno.EISDIR:
        return ForbiddenError(f"log file {path!r} is not a regular file: refused")
    return ForbiddenError(f"log file {path!r} cannot be {verb}: {error.strerror}")


def _regular(fd: int, path: str) -> int:
    """``fd`` made blocking, once it is known to be a regular file (closed on refusal)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise ForbiddenError(f"log file {path!r} is not a regular file: refused")
    os.set_blocking(fd, True)
    return fd


def open_in_home(home: PurePosixPath, path: str) -> BinaryIO:
    """Open ``path`` (absolute, or relative to ``home``) for reading, only if it is in ``home``.

    Raises NotFoundError when the file does not exist (yet) and ForbiddenError when it is
    outside the home (a ``..`` or a symlink) or is not a regular file.
    """
    fd = open_fd_in_home(home, path, flags=os.O_RDONLY)
    return os.fdopen(fd, "rb")


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
        now = os.stat(path, follow_symlinks=False)  # a symlink now: reopened, and refused
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
