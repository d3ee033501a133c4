"""The emailer's Kubernetes edge: its own API client, and list+watch as an async iterator.

The predecessor watched every pod of the cluster and crashed on a 410 Gone. Here the apiserver
filters (:data:`JOB_PODS_SELECTOR`: pods made by the jobs framework that asked for emails),
and :class:`ListWatch` keeps a collection in view for good, as client-go's reflector does:

* list (paged), hand every object over, then watch from the list's ``resourceVersion`` with
  bookmarks (``allowWatchBookmarks``), so a resumed watch starts where the last one stopped;
* when the server ends a watch (``timeoutSeconds``), watch again from the last version;
* on 410 Gone (the version is older than the server keeps: as an HTTP status or as an ERROR
  event) list again. A relist hands over the current state of every object, so whatever
  changed during the gap is seen; what was seen before is seen again, which is harmless
  because the pipeline de-duplicates events by fingerprint;
* any other failure: wait with capped exponential backoff (:class:`Backoff`), then resume.

The official client blocks, so each collection (all namespaces, or one per configured
namespace) runs in its own daemon thread and hands batches over with
``loop.call_soon_threadsafe``. Reads are bounded (``timeoutSeconds`` and the request timeout)
and stopping shuts the socket down, so a cancelled iterator releases its thread at once.
:class:`WatchStats` counts what happened for ``/healthz`` and ``/metrics``.

Requests are raw JSON through the client's transport with credentials from
:class:`tjf_core.kube.CredentialStore` (a kubeconfig or the in-cluster service account; the
API server's certificate is always verified).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import attrs

from tjf_core.errors import TjfError
from tjf_core.model import Emails
from tjf_core.render import EMAILS_LABEL, MANAGED_BY
from tjf_emailer.health import WatchStats
from tjf_emailer.kubeapi import ApiRefusal, Json, KubeApi, WatchStream

__all__ = [
    "JOB_PODS_SELECTOR",
    "Backoff",
    "ListWatch",
    "WatchItem",
    "pod_watch",
    "resource_version_of",
]

log = logging.getLogger("tjf_emailer.kube")

#: Pods of jobs that asked for emails; the label values are the emails settings but ``none``.
JOB_PODS_SELECTOR = (
    f"app.kubernetes.io/managed-by={MANAGED_BY},{EMAILS_LABEL} in "
    f"({','.join(sorted(e.value for e in Emails if e is not Emails.NONE))})"
)
#: A watch read waits this much longer than the server's own timeout before giving up.
_READ_MARGIN = 15.0


@attrs.define
class Backoff:
    """Capped exponential backoff: ``initial`` doubling up to ``maximum``, minus some jitter.

    The jitter (up to ``jitter`` of the delay, taken off) keeps replicas that failed together
    from retrying together.
    """

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.2
    random: Callable[[], float] = random.random
    failures: int = 0

    def next(self) -> float:
        """The delay before the next try after one more failure."""
        self.failures += 1
        base = min(self.initial * 2.0 ** min(self.failures - 1, 64), self.maximum)
        return base * (1.0 - self.jitter * self.random())

    def reset(self) -> None:
        self.failures = 0


@attrs.frozen
class WatchItem:
    """What one collection showed: ``LISTED`` (by a list), ``ADDED``, ``MODIFIED``, ``DELETED``,
    ``BOOKMARK`` (by the watch), or ``SYNCED`` (a list is complete; ``object`` holds only its
    ``metadata.resourceVersion``). Everything of the collection up to an item's
    ``resourceVersion`` came before it (except for ``LISTED`` items, whose order is none)."""

    type: str
    object: Json
    #: The collection it came from (its API path).
    path: str = ""


_Emit = Callable[[list[WatchItem] | None], bool]


class _Gone(Exception):
    """The resourceVersion is too old: list again."""


def resource_version_of(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    return version if isinstance(version, str) and version else None


class _Collection:
    """The list+watch loop of one collection path, run by one thread."""

    def __init__(
        self, api: KubeApi, *, path: str, selectors: Mapping[str, str], timeout_seconds: int,
        page_size: int, backoff: Backoff, stats: WatchStats, emit: _Emit,
        resource_version: str | None,
    ) -> None:
        self.path = path
        self._api = api
        self._selectors = dict(selectors)
        self._timeout = timeout_seconds
        self._page_size = page_size
        self._backoff = backoff
        self._stats = stats
        self._emit = emit
        #: Everything of the collection up to this version was handed over (None: relisting).
        self.resource_version = resource_version
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None
        self.thread = threading.Thread(target=self._run, name=f"tjf-watch {path}", daemon=True)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.abort()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self.resource_version is None:
                        self._list()
                    self._watch()
                    self._backoff.reset()
                except _Gone:
                    # Nothing is wrong: the server no longer has that version. List again now.
                    self._stats.count("relists")
                    log.info("the watch of %s expired (410 Gone): listing again", self.path)
                    self.resource_version = None
                except Exception as error:
                    if self._stop.is_set():
                        break
                    delay = self._backoff.next()
                    text = str(error) if isinstance(error, TjfError) else repr(error)
                    self._stats.count("restarts", error=text)
                    if not isinstance(error, TjfError):
                        log.exception("the watch of %s failed unexpectedly", self.path)
                    log.warning("the watch of %s failed, again in %.1f s: %s",
                                self.path, delay, text)
                    self._stop.wait(delay)
        finally:
            self._emit(None)

    def _list(self) -> None:
        page: str | None = None
        while not self._stop.is_set():
            query = {**self._selectors, "limit": str(self._page_size)}
            if page:
                query["continue"] = page
            try:
                answer = self._api.request("GET", self.path, query=query)
            except ApiRefusal as refusal:
                if refusal.status == 410 and page:
                    # The paging token expired: start over (seen twice is harmless).
                    self._stats.count("relists")
                    page = None
                    continue
                raise
            metadata: Json = answer["metadata"] if isinstance(answer.get("metadata"), dict) else {}
            items: list[Any] = answer["items"] if isinstance(answer.get("items"), list) else []
            self._stats.touch(events=len(items))
            batch = [WatchItem("LISTED", item, self.path) for item in items
                     if isinstance(item, dict)]
            if batch and not self._emit(batch):
                self._stop.set()
                return
            page = metadata.get("continue") or None
            if page is None:
                version = metadata.get("resourceVersion")
                if not isinstance(version, str) or not version:
                    raise TjfError(f"the list of {self.path} has no resourceVersion")
                synced = {"metadata": {"resourceVersion": version}}
                self._emit([WatchItem("SYNCED", synced, self.path)])
                self.resource_version = version
                self._stats.count("lists")
                return

    def _watch(self) -> None:
        assert self.resource_version is not None
        query = {
            **self._selectors, "watch": "true", "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._timeout), "resourceVersion": self.resource_version,
        }
        try:
            stream = self._api.stream(self.path, query=query,
                                      read_timeout=self._timeout + _READ_MARGIN)
        except ApiRefusal as refusal:
            if refusal.status == 410:
                raise _Gone from None
            raise
        with self._lock:
            self._stream = stream
            if self._stop.is_set():
                stream.abort()
        try:
            self._stats.touch()
            self._stats.count("watches")
            for event in stream.events():
                if self._stop.is_set():
                    return
                self._handle(event)
        finally:
            with self._lock:
                self._stream = None
            stream.close()

    def _handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            raise TjfError(f"a watch event of {self.path} has no object")
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Gone
            raise ApiRefusal(code if isinstance(code, int) else 500,
                             f"the watch of {self.path} failed: {obj.get('message')}")
        if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
            return
        self._stats.touch(events=kind != "BOOKMARK")
        if not self._emit([WatchItem(str(kind), obj, self.path)]):
            self._stop.set()
            return
        version = resource_version_of(obj)
        if version is not None:
            self.resource_version = version


class ListWatch:
    """List+watch collections for good, as one async iterator of :class:`WatchItem`.

    One-shot: iterate it once. :meth:`stop` (or cancelling the iteration) ends the threads;
    after :meth:`stop`, iterating on hands over what was still queued, then ends.
    """

    def __init__(
        self, api: KubeApi, *, paths: Sequence[str], label_selector: str | None = None,
        field_selector: str | None = None, timeout_seconds: float = 60.0, page_size: int = 500,
        stats: WatchStats | None = None, backoff: Callable[[], Backoff] = Backoff,
        resource_version: str | None = None,
    ) -> None:
        selectors = {}
        if label_selector:
            selectors["labelSelector"] = label_selector
        if field_selector:
            selectors["fieldSelector"] = field_selector
        self.stats = stats if stats is not None else WatchStats()
        self._api = api
        self._selectors = selectors
        self._timeout = max(1, int(timeout_seconds))
        self._page_size = page_size
        self._backoff = backoff
        self._start_version = resource_version
        self._paths = tuple(paths)
        self._collections: list[_Collection] = []
        self._stopped = False

    @property
    def paths(self) -> tuple[str, ...]:
        return self._paths

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(c.thread for c in self._collections)

    def stop(self) -> None:
        self._stopped = True
        for collection in self._collections:
            collection.stop()

    def __aiter__(self) -> AsyncIterator[WatchItem]:
        return self._items()

    async def _items(self) -> AsyncIterator[WatchItem]:
        if self._collections:
            raise RuntimeError("a ListWatch is iterated once")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[WatchItem] | None] = asyncio.Queue()

        def emit(batch: list[WatchItem] | None) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, batch)
            except RuntimeError:  # the loop is closed: nobody listens any more
                return False
            return batch is None or not self._stopped

        self._collections = [
            _Collection(self._api, path=path, selectors=self._selectors,
                        timeout_seconds=self._timeout, page_size=self._page_size,
                        backoff=self._backoff(), stats=self.stats, emit=emit,
                        resource_version=self._start_version)
            for path in self._paths
        ]
        if self._stopped:
            for collection in self._collections:
                collection.stop()
        for collection in self._collections:
            collection.thread.start()
        running = len(self._collections)
        try:
            while running:
                batch = await queue.get()
                if batch is None:
                    running -= 1
                    continue
                for item in batch:
                    yield item
        finally:
            self.stop()


def pod_watch(
    api: KubeApi, *, namespaces: Sequence[str] = (), timeout_seconds: float = 60.0,
    stats: WatchStats | None = None, resource_version: str | None = None,
    backoff: Callable[[], Backoff] = Backoff, page_size: int = 500,
) -> ListWatch:
    """The pods of jobs that asked for emails, in ``namespaces`` (all when empty).

    ``resource_version`` starts watching there without a first list (tests use an expired one).
    """
    paths = ([f"/api/v1/namespaces/{namespace}/pods" for namespace in namespaces]
             or ["/api/v1/pods"])
    return ListWatch(api, paths=paths, label_selector=JOB_PODS_SELECTOR,
                     timeout_seconds=timeout_seconds, stats=stats, backoff=backoff,
                     resource_version=resource_version, page_size=page_size)
