"""Job notifications: what just happened in a job's pod, and whether its tool wants an email.

The emailer sees pods, but tool maintainers care about jobs. This module turns the plain dict of
one pod (as the Kubernetes API returns it, possibly malformed) into :class:`JobEvent` values,
and decides with :func:`wants_email` whether the job's ``emails`` setting asks for a mail
about each. It is pure: no clock, no I/O; grouping events into digests is
:mod:`tjf_core.notification_digest`, writing the email :mod:`tjf_core.notification_mail`.

Decisions:

* A pod gives up to two events, both read from the job container: its current ``state`` and,
  when the container was restarted, its ``lastState`` termination. Without the second, a crash
  loop (running, terminated, running, ...) would look like a container that is merely running
  whenever the watch happens to look.
* Waiting while the container is being created (``ContainerCreating``, ``PodInitializing``) is
  not news: it always ends in running or in another waiting reason, which is reported.
* A pod that failed before its container ever ran (evicted, or past its deadline) has no
  container termination; it gives one terminated event carrying the pod's own reason.
* The tool is the pod's namespace (``tool-<tool>``), which Kubernetes RBAC makes trustworthy;
  the ``app.kubernetes.io/created-by`` label, which any tool can write on its own pods, is used
  only for a pod dict without a namespace. A pod in a namespace that is not a tool's is ignored:
  otherwise one tool could have mail about its pods sent to another tool's maintainers.
* Failure (for ``onfailure``) is a termination with a non-zero exit code, or one killed:
  ``OOMKilled``, ``DeadlineExceeded``, ``Error`` or ``Evicted``, in the container's or the pod's
  reason. An exit code of 0 is a success and is always kept (and printed) as 0.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from tjf_core.model import Emails, JobKind
from tjf_core.pods import time_at
from tjf_core.readback import split_log_redirects
from tjf_core.render import COMPONENT_LABEL, EMAILS_LABEL, FILELOG_LABEL, NAME_LABEL, SHELL

__all__ = [
    "KILLED_REASONS",
    "ContainerState",
    "Fingerprint",
    "JobEvent",
    "PodInfo",
    "events_from_pod",
    "is_failure",
    "tool_of_pod",
    "wants_email",
]

#: Reasons Kubernetes gives when it stopped a container (or pod) rather than it ending.
KILLED_REASONS = frozenset({"OOMKilled", "DeadlineExceeded", "Error", "Evicted"})
_CREATING = frozenset({"ContainerCreating", "PodInitializing"})
_YES = frozenset({"yes", "Yes", "YES", "true", "True"})
_KINDS: dict[str | None, JobKind] = {
    "jobs": JobKind.ONE_OFF, "cronjobs": JobKind.SCHEDULED, "deployments": JobKind.CONTINUOUS,
}
_CREATED_BY = "app.kubernetes.io/created-by"
#: The job's container (:attr:`tjf_core.settings.RenderSettings.container_name`); any other
#: pod is read from its first container.
_CONTAINER = "job"
_EMAILS: dict[str | None, Emails] = {member.value: member for member in Emails}

#: (tool, job, pod, state, exit code): two events with the same one are the same news.
Fingerprint = tuple[str, str, str, str, int | None]


class ContainerState(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


#: The order a (malformed) state with several keys is read in.
_STATES = tuple((member.value, member) for member in (
    ContainerState.TERMINATED, ContainerState.RUNNING, ContainerState.WAITING))


@attrs.frozen(kw_only=True)
class PodInfo:
    """The job pod an event was seen in, as that sighting shows it (shared by its events)."""

    tool: str
    job: str
    #: The pod's name.
    name: str
    #: From the component label; None for a pod that has none (made by something else).
    kind: JobKind | None
    emails: Emails
    filelog: bool
    #: The stdout and stderr files the container's command appends to (as written there).
    log_files: tuple[str, ...] = ()
    #: The pod's own failure reason (``DeadlineExceeded``, ``Evicted``), apart from the container's.
    reason: str | None = None
    #: When the pod started: restarts are counted from then.
    started_at: datetime | None = None
    #: How many times the job's container was restarted.
    restart_count: int = 0


@attrs.frozen(kw_only=True)
class JobEvent:
    """One state of a job's container, with what the emailer needs to tell the tool about it.

    What is about the pod rather than this state is in :attr:`source`, one object for both
    events of a pod (the emailer reads every pod the watch sends: this is its hot path), and
    readable from here too: ``event.tool``, ``event.job``, ``event.pod`` (its name) and so on.
    """

    source: PodInfo
    state: ContainerState
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: True for the termination before the latest restart (the container's ``lastState``).
    previous: bool = False

    @property
    def tool(self) -> str:
        return self.source.tool

    @property
    def job(self) -> str:
        return self.source.job

    @property
    def pod(self) -> str:
        return self.source.name

    @property
    def kind(self) -> JobKind | None:
        return self.source.kind

    @property
    def emails(self) -> Emails:
        return self.source.emails

    @property
    def filelog(self) -> bool:
        return self.source.filelog

    @property
    def log_files(self) -> tuple[str, ...]:
        return self.source.log_files

    @property
    def pod_reason(self) -> str | None:
        return self.source.reason

    @property
    def pod_started_at(self) -> datetime | None:
        return self.source.started_at

    @property
    def restart_count(self) -> int:
        return self.source.restart_count

    @property
    def fingerprint(self) -> Fingerprint:
        source = self.source
        return (source.tool, source.job, source.name, self.state.value, self.exit_code)

    @property
    def at(self) -> datetime | None:
        """When it happened: the end of a termination, the start of a run; None for waiting."""
        return self.finished_at or self.started_at


def tool_of_pod(pod: object, *, namespace_prefix: str = "tool-") -> str | None:
    """The tool a pod belongs to (see the module docstring for why the namespace decides)."""
    metadata = _mapping(_mapping(pod).get("metadata"))
    return _tool(metadata, _mapping(metadata.get("labels")), namespace_prefix)


def _tool(metadata: Mapping[str, Any], labels: Mapping[str, Any], prefix: str) -> str | None:
    namespace = _text(metadata.get("namespace"))
    if namespace is None:
        return _text(labels.get(_CREATED_BY))
    if namespace.startswith(prefix) and len(namespace) > len(prefix):
        return namespace[len(prefix) :]
    return None


# The readers below are pods.value_at & co. specialised for the one shape read here: the
# emailer reads every pod the watch sends, so this is its hottest loop.
_EMPTY: Mapping[str, Any] = {}


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return _EMPTY


def _text(value: object) -> str | None:
    return value if type(value) is str and value else None


@functools.lru_cache(maxsize=8192)
def _parse_time(text: str) -> datetime | None:
    # A pod is seen many times with the same timestamps; parsing them again is wasted work.
    return time_at({"t": text}, "t")


def events_from_pod(
    pod: Mapping[str, Any], *, namespace_prefix: str = "tool-"
) -> tuple[JobEvent, ...]:
    """The events one pod dict shows: the lastState termination first, then the current state.

    Pods that are not a job's (no tool, job name or pod name) give none; neither does a pod
    whose emails label is missing or not a known setting, as if it were ``none``.
    """
    metadata = _mapping(_mapping(pod).get("metadata"))
    labels = _mapping(metadata.get("labels"))
    tool = _tool(metadata, labels, namespace_prefix)
    job = _text(labels.get(NAME_LABEL))
    name = _text(metadata.get("name"))
    emails = _EMAILS.get(_text(labels.get(EMAILS_LABEL)), Emails.NONE)
    if tool is None or job is None or name is None or emails is Emails.NONE:
        return ()
    status = _mapping(pod.get("status"))
    container = _named_or_first(status.get("containerStatuses"), _CONTAINER)
    restarts = container.get("restartCount")
    started = status.get("startTime")
    source = PodInfo(
        tool=tool,
        job=job,
        name=name,
        kind=_KINDS.get(_text(labels.get(COMPONENT_LABEL))),
        emails=emails,
        filelog=_text(labels.get(FILELOG_LABEL)) in _YES,
        log_files=_log_files(pod, _text(container.get("name"))),
        reason=_text(status.get("reason")),
        started_at=_parse_time(started) if type(started) is str and started else None,
        restart_count=restarts if type(restarts) is int and restarts > 0 else 0,
    )
    last = _mapping(_mapping(container.get("lastState")).get("terminated"))
    before = (_event(source, ContainerState.TERMINATED, last, previous=True),) if last else ()
    state = _mapping(container.get("state"))
    for key, member in _STATES:
        detail = state.get(key)
        if type(detail) is dict or isinstance(detail, Mapping):
            if member is ContainerState.WAITING and _text(detail.get("reason")) in _CREATING:
                return before
            return (*before, _event(source, member, detail, previous=False))
    if status.get("phase") == "Failed":
        # Evicted or past its deadline before the container ran: the pod's word is all there is.
        return (*before, JobEvent(
            source=source, state=ContainerState.TERMINATED, reason=source.reason,
            message=_text(status.get("message")),
        ))
    return before


def _event(
    source: PodInfo, state: ContainerState, detail: Mapping[str, Any], *, previous: bool
) -> JobEvent:
    code = detail.get("exitCode")
    started = detail.get("startedAt")
    finished = detail.get("finishedAt")
    return JobEvent(
        source=source,
        state=state,
        reason=_text(detail.get("reason")),
        message=_text(detail.get("message")),
        exit_code=code if type(code) is int and state is ContainerState.TERMINATED else None,
        started_at=_parse_time(started) if type(started) is str and started else None,
        finished_at=_parse_time(finished) if type(finished) is str and finished else None,
        previous=previous,
    )


def _named_or_first(items: object, name: object) -> Mapping[str, Any]:
    """The mapping in the list ``items`` named ``name``, else the first mapping, else empty."""
    if type(items) is not list:
        return _EMPTY
    first = None
    for item in items:
        if type(item) is dict or isinstance(item, Mapping):
            if item.get("name") == name:
                return item
            first = first or item
    return first or _EMPTY


def _log_files(pod: Mapping[str, Any], container: str | None) -> tuple[str, ...]:
    spec = _named_or_first(_mapping(pod.get("spec")).get("containers"), container)
    command = spec.get("command")
    # ["/bin/sh", "-c", "--", LINE] as tjf writes it, or ["/bin/sh", "-c", LINE] as of old.
    if type(command) is not list or not 3 <= len(command) <= 4:
        return ()
    line = command[-1]
    if command[0] != SHELL[0] or command[1] != SHELL[1] or (
            len(command) == 4 and command[2] != SHELL[2]):
        return ()
    return _redirected_files(line) if type(line) is str else ()


@functools.lru_cache(maxsize=8192)
def _redirected_files(line: str) -> tuple[str, ...]:
    # Every pod of a job has the same command line: parse it once.
    redirects = split_log_redirects(line)
    if redirects is None:
        return ()
    out, err, _ = redirects
    return (out,) if out == err else (out, err)


def is_failure(event: JobEvent) -> bool:
    """A termination with a non-zero exit code, or one Kubernetes killed."""
    if event.state is not ContainerState.TERMINATED:
        return False
    return (
        event.exit_code not in (None, 0)
        or event.reason in KILLED_REASONS
        or event.pod_reason in KILLED_REASONS
    )


def wants_email(event: JobEvent) -> bool:
    """Whether the job's emails setting asks for a mail about this event."""
    if event.emails is Emails.ALL:
        return True
    if event.emails is Emails.ONFINISH:
        return event.state is ContainerState.TERMINATED
    if event.emails is Emails.ONFAILURE:
        return is_failure(event)
    return False
