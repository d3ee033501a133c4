"""The :class:`~tjf_core.runtime.Runtime` of a real cluster: the Kubernetes API, as each tool.

Every method acts in one tool's namespace with that tool's credentials (see
:mod:`tjf_core.kube.credentials`), sends and reads raw JSON (see :mod:`tjf_core.kube.transport`)
and raises only core errors. Costs are fixed, whatever the number of jobs: a listing is five
list calls (Jobs, CronJobs and Deployments by the framework's label, their pods, the events of
the namespace), a deletion one ``deletecollection`` per kind. Nothing waits for Kubernetes to
finish: deletions use background propagation and return at once.

CronJobs: the service always renders ``batch/v1``; on a cluster older than 1.21, which serves
them only as ``batch/v1beta1`` (found by API discovery once, or set in the settings), the
runtime writes and reads them there and refuses a time zone it would silently lose.

A followed pod log (:class:`~tjf_core.kube.transport.FollowedLog`) may wait hours for its
next line in a blocking read; its ``abort()`` shuts the connection down from any thread, so a
front end whose client went away frees the reading thread at once instead of at the next line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from tjf_core.errors import (
    AlreadyExistsError,
    InvalidInputError,
    InvalidJobError,
    NotFoundError,
    Problem,
    TjfError,
)
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.kube.catalog import CatalogCache, file_fetcher
from tjf_core.kube.credentials import Credentials, CredentialStore
from tjf_core.kube.errors import (
    ConcurrentChangeError,
)
from tjf_core.kube.objects import (
    EVENT,
    KINDS,
    LIMIT_RANGE,
    MANAGED_SELECTOR,
    POD,
    RESOURCE_QUOTA,
    Kind,
    carry_over,
    cronjob_kind,
    dropped_time_zone,
    is_label_value,
    is_object_name,
    job_selector,
    prepared_body,
)
from tjf_core.kube.settings import KubeSettings
from tjf_core.kube.transport import STRATEGIC_MERGE_PATCH, Json, RequestHook, Transport
from tjf_core.render import NAME_LABEL
from tjf_core.runtime import Manifest, ToolObjects
from tjf_core.settings import RenderSettings

__all__ = ["KubernetesRuntime"]

_BACKGROUND = {"propagationPolicy": "Background"}
#: How long a re-create waits for the deleted object's name to be free again.
_RECREATE_SECONDS = 10.0
_REPLACE_ATTEMPTS = 3
#: What can go wrong below HTTP while a log streams (as :mod:`tjf_core.kube.transport` says).
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError, ApiException)


class KubernetesRuntime:
    """A runtime over the Kubernetes API. Thread-safe; ``close()`` releases the connections.

    ``clock`` (monotonic seconds) times the image catalog's refresh and the wait of a
    re-create; ``request_hook`` sees every request (method, path) before it is sent.
    """

    def __init__(
        self, settings: KubeSettings | None = None, *,
        credentials: CredentialStore | None = None,
        container_name: str = RenderSettings().container_name,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        request_hook: RequestHook | None = None,
    ) -> None:
        self.settings = settings if settings is not None else KubeSettings()
        self.credentials = (credentials if credentials is not None
                            else CredentialStore(self.settings))
        self._container = container_name
        self._clock = clock
        self._sleep = sleep
        self._http = Transport(request_timeout=self.settings.request_timeout_seconds,
                               connect_timeout=self.settings.connect_timeout_seconds,
                               hook=request_hook)
        self._lock = threading.Lock()
        self._cronjob_version: str | None = (
            None if self.settings.cronjob_api_version == "auto"
            else self.settings.cronjob_api_version
        )
        self._executor: ThreadPoolExecutor | None = None
        self.catalog = CatalogCache(fetch=self._catalog_fetcher(), source=self._catalog_source(),
                                    refresh_seconds=self.settings.images_refresh_seconds,
                                    clock=clock)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self.credentials.close()

    # --- reading -------------------------------------------------------------------------

    def list_objects(self, tool: ToolIdentity, *, job: str | None = None) -> ToolObjects:
        if job is not None and not is_label_value(job):
            return ToolObjects()  # no object can carry that name (and it never reaches a query)
        creds = self.credentials.for_tool(tool)
        selector = MANAGED_SELECTOR if job is None else f"{MANAGED_SELECTOR},{NAME_LABEL}={job}"
        managed = {"labelSelector": selector}
        lists = ((KINDS["Job"], managed), (self._cronjob(creds, tool), managed),
                 (KINDS["Deployment"], managed), (POD, managed), (EVENT, None))
        executor = self._list_executor()
        if executor is None:
            jobs, cronjobs, deployments, pods, events = (
                self._list(creds, tool, kind, query) for kind, query in lists)
        else:
            # Five independent reads: waiting for them side by side costs the slowest one.
            futures: list[Future[tuple[Manifest, ...]]] = [
                executor.submit(self._list, creds, tool, kind, query) for kind, query in lists]
            jobs, cronjobs, deployments, pods, events = (f.result() for f in futures)
        return ToolObjects(jobs=jobs, cronjobs=cronjobs, deployments=deployments, pods=pods,
                           events=events)

    def get(self, tool: ToolIdentity, *, kind: str, name: str) -> Manifest | None:
        creds = self.credentials.for_tool(tool)
        found = self._kind(creds, tool, kind)
        if not is_object_name(name):
            return None  # no object can have that name
        try:
            return self._http.json(creds, "GET", found.item(tool.namespace, name),
                                   kind=kind, name=name, tool=tool.tool)
        except NotFoundError:
            return None

    def quota(self, tool: ToolIdentity) -> tuple[Manifest | None, Manifest | None]:
        creds = self.credentials.for_tool(tool)
        return (self._namesake(creds, tool, RESOURCE_QUOTA),
                self._namesake(creds, tool, LIMIT_RANGE))

    def pod_logs(
        self, tool: ToolIdentity, *, pod: str, lines: int | None, follow: bool
    ) -> Iterator[str]:
        creds = self.credentials.for_tool(tool)
        live = self.get(tool, kind="Pod", name=pod)
        if live is None:
            raise NotFoundError(f"pod {pod!r} does not exist")
        query = {"container": self._log_container(live)}
        if lines is not None:
            query["tailLines"] = str(lines)
        if follow:
            query["follow"] = "true"
        path = POD.item(tool.namespace, pod) + "/log"
        try:
            return self._http.lines(creds, path, query=query, follow=follow, tool=tool.tool)
        except (NotFoundError, InvalidInputError) as error:
            # 400/404 from the log endpoint: the container has not started, or its node is
            # gone; the pod itself exists (it was just read).
            raise NotFoundError(
                f"the log of pod {pod!r} cannot be read (yet): {error}"
            ) from None

    def image_catalog(self) -> ImageCatalog:
        return self.catalog.get()

    # --- changing ------------------------------------------------------------------------

    def create(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        creds = self.credentials.for_tool(tool)
        kind = self._kind(creds, tool, str(manifest.get("kind")))
        body = prepared_body(manifest, kind=kind, namespace=tool.namespace)
        created = self._http.json(creds, "POST", kind.collection(tool.namespace), body=body,
                                  kind=kind.kind, name=_name(manifest), tool=tool.tool)
        self._check_time_zone(creds, tool, kind, sent=body, live=created)
        return created

    def replace(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        creds = self.credentials.for_tool(tool)
        kind = self._kind(creds, tool, str(manifest.get("kind")))
        body = prepared_body(manifest, kind=kind, namespace=tool.namespace)
        name = _name(manifest)
        for attempt in range(_REPLACE_ATTEMPTS):
            live = self.get(tool, kind=kind.kind, name=name)
            if live is None:
                return self.create(tool, body)
            try:
                replaced = self._http.json(
                    creds, "PUT", kind.item(tool.namespace, name),
                    body=carry_over(kind.kind, live=live, new=body),
                    kind=kind.kind, name=name, tool=tool.tool)
            except ConcurrentChangeError:
                if attempt + 1 == _REPLACE_ATTEMPTS:
                    raise
                continue  # a controller updated its status meanwhile: read it again
            except InvalidInputError as error:
                if not _immutable(error):
                    raise
                return self._recreate(creds, tool, kind, body)
            self._check_time_zone(creds, tool, kind, sent=body, live=replaced)
            return replaced
        raise AssertionError("unreachable: the last attempt returns or raises")

    def patch(self, tool: ToolIdentity, *, kind: str, name: str, patch: Manifest) -> Manifest:
        creds = self.credentials.for_tool(tool)
        found = self._kind(creds, tool, kind)
        if not is_object_name(name):
            raise NotFoundError(f"{kind} {name!r} does not exist")
        return self._http.json(creds, "PATCH", found.item(tool.namespace, name), body=patch,
                               content_type=STRATEGIC_MERGE_PATCH, kind=kind, name=name,
                               tool=tool.tool)

    def delete_job(self, tool: ToolIdentity, name: str) -> bool:
        if not is_label_value(name):
            return False  # no job can have that name, and it must not reach a selector
        return self._delete_selected(tool, job_selector(name))

    def delete_all(self, tool: ToolIdentity) -> None:
        self._delete_selected(tool, MANAGED_SELECTOR)

    # --- helpers -------------------------------------------------------------------------

    def _delete_selected(self, tool: ToolIdentity, selector: str) -> bool:
        """Delete every object matching ``selector``; True if a job's object was among them.

        Pods are deleted too, so none keeps running until the garbage collector gets to it,
        but do not count: pods left terminating from an earlier deletion are not a job.
        """
        creds = self.credentials.for_tool(tool)
        query = {"labelSelector": selector}
        deleted = False
        # The CronJob first, so that it starts no new Job while the others go.
        for kind in (self._cronjob(creds, tool), KINDS["Job"], KINDS["Deployment"]):
            answer = self._http.json(creds, "DELETE", kind.collection(tool.namespace),
                                     query=query, body=_BACKGROUND, tool=tool.tool)
            deleted = deleted or bool(answer.get("items"))
        # Services have no deletecollection before Kubernetes 1.23: one by one.
        service = KINDS["Service"]
        for item in self._list(creds, tool, service, query):
            deleted = self._delete_one(creds, tool, service, _name(item)) or deleted
        self._http.json(creds, "DELETE", POD.collection(tool.namespace), query=query,
                        body=_BACKGROUND, tool=tool.tool)
        return deleted

    def _delete_one(self, creds: Credentials, tool: ToolIdentity, kind: Kind, name: str) -> bool:
        """Delete one object, its dependents in the background; False if it was not there."""
        try:
            self._http.json(creds, "DELETE", kind.item(tool.namespace, name), body=_BACKGROUND,
                            kind=kind.kind, name=name, tool=tool.tool)
        except NotFoundError:
            return False
        return True

    def _recreate(self, creds: Credentials, tool: ToolIdentity, kind: Kind,
                  body: Json) -> Manifest:
        self._delete_one(creds, tool, kind, _name(body))
        deadline = self._clock() + _RECREATE_SECONDS
        while True:
            try:
                return self.create(tool, body)
            except AlreadyExistsError:
                # A finalizer can keep the old object a moment after the delete.
                if self._clock() > deadline:
                    raise
                self._sleep(0.1)

    def _check_time_zone(self, creds: Credentials, tool: ToolIdentity, kind: Kind, *,
                         sent: Mapping[str, Any], live: Mapping[str, Any]) -> None:
        zone = dropped_time_zone(sent, live) if kind.kind == "CronJob" else None
        if zone is None:
            return
        # The apiserver dropped the field (a cluster before 1.25): the CronJob would run its
        # schedule in UTC. Take it away again rather than run it at the wrong hours.
        self._delete_one(creds, tool, kind, _name(live))
        raise InvalidJobError([Problem(
            "timezone",
            f"{zone!r} cannot be used: this cluster does not support time zones for CronJobs; "
            "remove it and write the schedule in UTC",
        )])

    def _list_executor(self) -> ThreadPoolExecutor | None:
        if not self.settings.list_threads:
            return None
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.settings.list_threads,
                                                    thread_name_prefix="tjf-kube-list")
            return self._executor

    def _list(self, creds: Credentials, tool: ToolIdentity, kind: Kind,
              query: Mapping[str, str] | None) -> tuple[Manifest, ...]:
        answer = self._http.json(creds, "GET", kind.collection(tool.namespace), query=query,
                                 tool=tool.tool)
        items = answer.get("items") or []
        # Items of a list carry no apiVersion and kind; the readers of objects need them.
        for item in items:
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return tuple(items)

    def _namesake(self, creds: Credentials, tool: ToolIdentity, kind: Kind) -> Manifest | None:
        """The object of ``kind`` named like the namespace (maintain-kubeusers'), else any."""
        items = self._list(creds, tool, kind, None)
        for item in items:
            if _name(item) == tool.namespace:
                return item
        return items[0] if items else None

    def _log_container(self, pod: Mapping[str, Any]) -> str:
        containers = [c.get("name") for c in pod.get("spec", {}).get("containers") or ()]
        if len(containers) == 1 and containers[0]:
            return str(containers[0])
        if self._container in containers:
            return self._container
        raise NotFoundError(
            f"pod {_name(pod)!r} has containers {', '.join(map(str, containers))} and none is "
            f"the job's container {self._container!r}"
        )

    def _kind(self, creds: Credentials, tool: ToolIdentity, kind: str) -> Kind:
        if kind == "CronJob":
            return self._cronjob(creds, tool)
        found = KINDS.get(kind)
        if found is None:
            raise InvalidJobError([Problem(
                "kind", f"{kind!r} is not a kind of object jobs are made of: use "
                        f"CronJob, {', '.join(KINDS)}")])
        return found

    def _cronjob(self, creds: Credentials, tool: ToolIdentity) -> Kind:
        version = self._cronjob_version
        if version is None:
            version = self._discover_cronjob_version(creds, tool)
        return cronjob_kind(version)

    def _discover_cronjob_version(self, creds: Credentials, tool: ToolIdentity) -> str:
        # Discovery is open to every authenticated user, so the tool's credentials do.
        resources = self._http.json(creds, "GET", "/apis/batch/v1", tool=tool.tool)
        served = any(
            isinstance(r, Mapping) and r.get("name") == "cronjobs"
            for r in resources.get("resources") or ()
        )
        version = "batch/v1" if served else "batch/v1beta1"
        with self._lock:
            self._cronjob_version = version
        return version

    def _catalog_source(self) -> str:
        if self.settings.images_file is not None:
            return f"file {self.settings.images_file}"
        s = self.settings
        return (f"ConfigMap {s.images_configmap_namespace}/{s.images_configmap_name}, "
                f"key {s.images_configmap_key}")

    def _catalog_fetcher(self) -> Callable[[], str]:
        if self.settings.images_file is not None:
            return file_fetcher(self.settings.images_file)
        s = self.settings

        def fetch() -> str:
            path = (f"/api/v1/namespaces/{s.images_configmap_namespace}/configmaps/"
                    f"{s.images_configmap_name}")
            configmap = self._http.json(self.credentials.service(), "GET", path,
                                        kind="ConfigMap", name=s.images_configmap_name)
            text = (configmap.get("data") or {}).get(s.images_configmap_key)
            if not isinstance(text, str):
                raise TjfError(f"it has no key {s.images_configmap_key!r}")
            return text

        return fetch


def _name(manifest: Mapping[str, Any]) -> str:
    return str((manifest.get("metadata") or {}).get("name") or "")


def _immutable(error: InvalidInputError) -> bool:
    return "field is immutable" in str(error)
