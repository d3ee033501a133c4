"""The spool: a directory where every composed email waits until a mail server accepted it.

The predecessor kept its queue in memory, so an SMTP outage or a restart lost mail. Here an
email is a file from the moment it is composed: written to a temporary file, flushed to disk
(``fsync``), then renamed into place (a rename within a directory is atomic), and the directory
is flushed too, so after a crash a spooled email is either all there or not there at all. It
is removed only after the server accepted it. Files are named ``<microseconds>-<key>.eml``:
sorting the names gives the order they were composed in, and the key (a hash of the
Message-ID) makes spooling the same email twice a no-op.

An email the server refuses for good (a 5xx answer) is moved to ``dead/`` for a person to look
at, rather than retried forever or deleted. Next to the emails lives the watermark (see
:meth:`tjf_core.notification_digest.DigestBook.watermark`), written the same careful way.

Every method does blocking file I/O; async callers run them in a thread.
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import attrs

__all__ = ["Spool", "SpooledEmail"]

_SUFFIX = ".eml"
_TEMP = ".tmp-"
_WATERMARK = "watermark"


@attrs.frozen
class SpooledEmail:
    """One email in the spool, by file name."""

    name: str
    path: Path


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(_TEMP + path.name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    _fsync_directory(path.parent)


class Spool:
    """A spool directory (created, private to its owner, when missing)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.dead = directory / "dead"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dead.mkdir(mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        for stale in directory.glob(_TEMP + "*"):
            # A write that crashed before its rename: the email was never spooled.
            stale.unlink(missing_ok=True)
        self._keys = {self._key_of(item.name) for item in self.pending()}

    @staticmethod
    def _key_of(name: str) -> str:
        return name.removesuffix(_SUFFIX).partition("-")[2]

    @staticmethod
    def key_for(message_id: str) -> str:
        """The file key of an email: a hash, since a Message-ID may hold any character."""
        return hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:32]

    def put(self, data: bytes, *, message_id: str, now: datetime) -> SpooledEmail | None:
        """Spool an email, durably; None when the same email is spooled already."""
        key = self.key_for(message_id)
        micros = int(now.astimezone(UTC).timestamp() * 1_000_000)
        name = f"{micros:017d}-{key}{_SUFFIX}"
        with self._lock:
            if key in self._keys:
                return None
            self._keys.add(key)
        try:
            _write_atomically(self.directory / name, data)
        except BaseException:
            with self._lock:
                self._keys.discard(key)
            raise
        return SpooledEmail(name, self.directory / name)

    def pending(self) -> list[SpooledEmail]:
        """The spooled emails, oldest first."""
        names = sorted(
            entry.name for entry in os.scandir(self.directory)
            if entry.name.endswith(_SUFFIX) and not entry.name.startswith(_TEMP)
            and entry.is_file(follow_symlinks=False)
        )
        return [SpooledEmail(name, self.directory / name) for name in names]

    def __len__(self) -> int:
        return len(self.pending())

    def read(self, item: SpooledEmail) -> bytes:
        return item.path.read_bytes()

    def remove(self, item: SpooledEmail) -> None:
        """Forget an email the server accepted."""
        item.path.unlink(missing_ok=True)
        _fsync_directory(self.directory)
        with self._lock:
            self._keys.discard(self._key_of(item.name))

    def bury(self, item: SpooledEmail) -> Path:
        """Move an email the server refused for good to ``dead/``."""
        target = self.dead / item.name
        os.replace(item.path, target)
        _fsync_directory(self.directory)
        with self._lock:
            self._keys.discard(self._key_of(item.name))
        return target

    def read_watermark(self) -> datetime | None:
        """The watermark the last run left, None when there is none (or it is unreadable)."""
        try:
            when = datetime.fromisoformat(
                (self.directory / _WATERMARK).read_text("utf-8").strip()
            )
        except (OSError, ValueError):
            return None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    def write_watermark(self, when: datetime) -> None:
        _write_atomically(self.directory / _WATERMARK, when.isoformat().encode("ascii"))
