"""The local runtime's state: every tool's objects, its processes and its runs, in SQLite.

Objects are held in memory (one dict per namespace, as the in-memory fake holds them) and
written through to SQLite, so a listing never reads the disk and a new runtime on the same
state directory starts where the last one stopped. Writes are gathered and committed once per
operation (an API call, a supervisor round): WAL journal with ``synchronous=NORMAL`` survives
the runtime being killed, not the machine losing power mid-write.

Besides objects the database keeps the tools (namespace, name, home, quota overrides), the
processes now running (pid and start time: what a restarted runtime must stop) and the
history of runs (start, end, exit code). The bookkeeping rules are :mod:`tjf_core.objectstore`'s.
One lock guards everything; every method expects the caller to hold ``lock``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from tjf_core.objectstore import key_of, new_object, updated_object
from tjf_core.runtime import Manifest

__all__ = ["LocalStore", "Run", "Space"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tools (
    namespace TEXT PRIMARY KEY, tool TEXT NOT NULL, home TEXT NOT NULL,
    resource_quota TEXT, limit_range TEXT);
CREATE TABLE IF NOT EXISTS objects (
    namespace TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (namespace, kind, name));
CREATE TABLE IF NOT EXISTS processes (
    namespace TEXT NOT NULL, pod TEXT NOT NULL, pid INTEGER NOT NULL, ticks INTEGER,
    PRIMARY KEY (namespace, pod));
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, job TEXT NOT NULL, pod TEXT NOT NULL,
    restart INTEGER NOT NULL, pid INTEGER, started_at REAL NOT NULL, finished_at REAL,
    exit_code INTEGER, reason TEXT);
CREATE INDEX IF NOT EXISTS runs_of_job ON runs (namespace, job, id);
"""
_VERSION = "1"


@attrs.frozen(kw_only=True)
class Run:
    """One run of a job's container: a Job attempt, or one start of a continuous job."""

    job: str
    pod: str
    #: Which start of the pod's container (0 first, then once per restart).
    restart: int
    pid: int | None
    started_at: datetime
    finished_at: datetime | None
    exit_code: int | None
    #: Why it ended: Completed, Error, DeadlineExceeded, Terminated, Unhealthy, Deleted ...
    reason: str | None


@attrs.define(eq=False)
class Space:
    """One tool's namespace: who it is, where it lives, its objects by (kind, name)."""

    namespace: str
    tool: str
    home: Path
    #: Set with LocalRuntime.set_quota; None: the settings' defaults.
    resource_quota: Manifest | None = None
    limit_range: Manifest | None = None
    objects: dict[tuple[str, str], Manifest] = attrs.Factory(dict)

    def of_kind(self, kind: str) -> Iterator[Manifest]:
        return (obj for (k, _), obj in self.objects.items() if k == kind)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class LocalStore:
    """The spaces in memory, written through to ``path`` (an SQLite file)."""

    def __init__(self, path: Path, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._dirty: set[tuple[str, str, str]] = set()
        self._gone: set[tuple[str, str, str]] = set()
        self.spaces: dict[str, Space] = {}
        self._serial = 0
        self._load()

    def _load(self) -> None:
        found = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if found.get("schema", _VERSION) != _VERSION:
            raise RuntimeError(f"state database schema {found['schema']} is not {_VERSION}")
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (_VERSION,))
        self._serial = int(found.get("serial", "0"))
        rows = self._db.execute("SELECT namespace, tool, home, resource_quota, limit_range "
                                "FROM tools").fetchall()
        for namespace, tool, home, quota, limits in rows:
            self.spaces[namespace] = Space(
                namespace=namespace, tool=tool, home=Path(home),
                resource_quota=json.loads(quota) if quota else None,
                limit_range=json.loads(limits) if limits else None)
        for namespace, kind, name, body in self._db.execute(
                "SELECT namespace, kind, name, body FROM objects ORDER BY rowid"):
            space = self.spaces.get(namespace)
            if space is not None:
                space.objects[kind, name] = json.loads(body)

    def close(self) -> None:
        self.commit()
        self._db.close()

    # --- spaces and objects ------------------------------------------------------------------

    def space(self, *, namespace: str, tool: str, home: Path) -> Space:
        """The namespace's space, made (and remembered) on first use."""
        space = self.spaces.get(namespace)
        if space is None:
            space = self.spaces[namespace] = Space(namespace=namespace, tool=tool, home=home)
            self._db.execute("INSERT OR REPLACE INTO tools VALUES (?, ?, ?, NULL, NULL)",
                             (namespace, tool, str(home)))
        return space

    def set_quota(self, space: Space, *, resource_quota: Manifest | None,
                  limit_range: Manifest | None) -> None:
        space.resource_quota, space.limit_range = resource_quota, limit_range
        self._db.execute(
            "UPDATE tools SET resource_quota = ?, limit_range = ? WHERE namespace = ?",
            (None if resource_quota is None else _dumps(resource_quota),
             None if limit_range is None else _dumps(limit_range), space.namespace))

    def serial(self) -> int:
        self._serial += 1
        return self._serial

    def add(self, space: Space, manifest: Manifest, *, keep_status: bool = False) -> Manifest:
        """Store a new object, as the API server does on create."""
        obj = new_object(manifest, namespace=space.namespace, serial=self.serial(),
                         uid=str(uuid.uuid4()), now=self.clock(), keep_status=keep_status)
        kind, name = key_of(obj)
        space.objects[kind, name] = obj
        self._mark(space, kind, name)
        return obj

    def update(self, space: Space, old: Manifest, new: Manifest) -> Manifest:
        """Store ``new`` in place of ``old``: same uid, new resourceVersion, status kept."""
        stored = updated_object(old, new, serial=self.serial())
        kind, name = key_of(old)
        space.objects[kind, name] = stored
        self._mark(space, kind, name)
        return stored

    def touch(self, space: Space, obj: Manifest) -> None:
        """``obj`` (stored in ``space``) was changed in place: a new resourceVersion."""
        obj["metadata"]["resourceVersion"] = str(self.serial())
        self._mark(space, obj["kind"], obj["metadata"]["name"])

    def remove(self, space: Space, kind: str, name: str) -> Manifest | None:
        obj = space.objects.pop((kind, name), None)
        if obj is not None:
            key = (space.namespace, kind, name)
            self._dirty.discard(key)
            self._gone.add(key)
        return obj

    def _mark(self, space: Space, kind: str, name: str) -> None:
        key = (space.namespace, kind, name)
        self._gone.discard(key)
        self._dirty.add(key)

    def commit(self) -> None:
        """Write every change since the last commit, in one transaction."""
        if not (self._dirty or self._gone or self._db.in_transaction):
            return
        db = self._db
        if not db.in_transaction:
            db.execute("BEGIN")
        db.executemany("DELETE FROM objects WHERE namespace = ? AND kind = ? AND name = ?",
                       sorted(self._gone))
        rows = []
        for namespace, kind, name in sorted(self._dirty):
            rows.append((namespace, kind, name,
                         _dumps(self.spaces[namespace].objects[kind, name])))
        db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", rows)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('serial', ?)", (str(self._serial),))
        db.execute("COMMIT")
        self._dirty.clear()
        self._gone.clear()

    def _begin(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN")

    # --- processes -----------------------------------------------------------------------------

    def record_process(self, space: Space, pod: str, *, pid: int, ticks: int | None) -> None:
        self._begin()
        self._db.execute("INSERT OR REPLACE INTO processes VALUES (?, ?, ?, ?)",
                         (space.namespace, pod, pid, ticks))

    def forget_process(self, space: Space, pod: str) -> None:
        self._begin()
        self._db.execute("DELETE FROM processes WHERE namespace = ? AND pod = ?",
                         (space.namespace, pod))

    def processes(self) -> list[tuple[str, str, int, int | None]]:
        """(namespace, pod, pid, start ticks) of every process recorded as running."""
        return self._db.execute("SELECT namespace, pod, pid, ticks FROM processes").fetchall()

    # --- runs ----------------------------------------------------------------------------------

    def start_run(self, space: Space, *, job: str, pod: str, restart: int, pid: int | None,
                  started: datetime) -> int:
        self._begin()
        cursor = self._db.execute(
            "INSERT INTO runs (namespace, job, pod, restart, pid, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (space.namespace, job, pod, restart, pid, started.timestamp()))
        return int(cursor.lastrowid or 0)

    def end_run(self, run: int, *, finished: datetime, exit_code: int | None,
                reason: str) -> None:
        self._begin()
        self._db.execute("UPDATE runs SET finished_at = ?, exit_code = ?, reason = ? "
                         "WHERE id = ? AND finished_at IS NULL",
                         (finished.timestamp(), exit_code, reason, run))

    def end_open_runs(self, *, finished: datetime, reason: str) -> None:
        """Close the runs a runtime that died left open (their exit code is unknown)."""
        self._begin()
        self._db.execute("UPDATE runs SET finished_at = ?, reason = ? WHERE finished_at IS NULL",
                         (finished.timestamp(), reason))

    def prune_runs(self, space: Space, job: str, *, keep: int) -> None:
        self._begin()
        self._db.execute(
            "DELETE FROM runs WHERE namespace = ? AND job = ? AND id NOT IN "
            "(SELECT id FROM runs WHERE namespace = ? AND job = ? ORDER BY id DESC LIMIT ?)",
            (space.namespace, job, space.namespace, job, keep))

    def runs(self, space: Space, *, job: str | None, limit: int) -> list[Run]:
        query = ("SELECT job, pod, restart, pid, started_at, finished_at, exit_code, reason "
                 "FROM runs WHERE namespace = ?")
        args: list[Any] = [space.namespace]
        if job is not None:
            query += " AND job = ?"
            args.append(job)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        found = []
        for name, pod, restart, pid, started, finished, code, reason in self._db.execute(
                query, args).fetchall():
            found.append(Run(
                job=name, pod=pod, restart=restart, pid=pid,
                started_at=datetime.fromtimestamp(started, UTC),
                finished_at=None if finished is None else datetime.fromtimestamp(finished, UTC),
                exit_code=code, reason=reason))
        found.reverse()
        return found
