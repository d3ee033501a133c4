"""Job notifications: what just happened in a job's pod, and whether its tool wants an email.

The emailer sees pods, but tool maintainers care about jobs. This module turns the plain dict of
one pod (as the Kubernetes API returns it, possibly malformed) into :class:`JobEvent` values,
and decides with :func:`wants_email` whether the job's ``emails`` setting asks for a mail
about each; :func:`wanted_events` does both, building only the events that are wanted. It is
pure: no clock, no I/O; grouping events into digests is :mod:`tjf_core.notification_digest`,
writing the email :mod:`tjf_core.notification_mail`.

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
from datetime import UTC, datetime
from typing import Any

import attrs

from tjf_core.model import Emails, JobKind
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
    "wanted_events",
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

    # Members are singletons, equal only to themselves: hashing by identity is right, and
    # Enum's own __hash__ (by name, in Python) costs more than a digest book lookup.
    __hash__ = object.__hash__


# Reading a member off an Enum class goes through EnumType.__getattr__, slower than reading
# a module's name: the hot paths read these.
_WAITING, _RUNNING, _TERMINATED = (
    ContainerState.WAITING, ContainerState.RUNNING, ContainerState.TERMINATED)
_NONE, _ALL, _ONFINISH, _ONFAILURE = Emails.NONE, Emails.ALL, Emails.ONFINISH, Emails.ONFAILURE


#: The order a (malformed) state with several keys is read in.
_STATES = tuple((member.value, member) for member in (_TERMINATED, _RUNNING, _WAITING))


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
    # None (a missing key) first: isinstance against an ABC costs more than reading a pod.
    if value is None:
        return _EMPTY
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return _EMPTY


def _text(value: object) -> str | None:
    return value if type(value) is str and value else None


@functools.lru_cache(maxsize=8192)
def _parse_time(text: str) -> datetime | None:
    # A pod is seen many times with the same timestamps; parsing them again is wasted work.
    # The rest is tjf_core.pods.time_at for a non-empty string (a test holds them equal).
    try:
        when = datetime.fromisoformat(text)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def events_from_pod(
    pod: Mapping[str, Any], *, namespace_prefix: str = "tool-"
) -> tuple[JobEvent, ...]:
    """The events one pod dict shows: the lastState termination first, then the current state.

    Pods that are not a job's (no tool, job name or pod name) give none; neither does a pod
    whose emails label is missing or not a known setting, as if it were ``none``.
    """
    return _read_pod(pod, namespace_prefix, wanted_only=False)


def wanted_events(
    pod: Mapping[str, Any], *, namespace_prefix: str = "tool-"
) -> tuple[JobEvent, ...]:
    """The events of one pod that its job's emails setting asks a mail about.

    ``tuple(e for e in events_from_pod(pod) if wants_email(e))`` (a test holds them equal), but
    an event is built only once it is wanted: most sightings are of no interest to their job
    (a running pod of an ``onfailure`` job), and the emailer reads every one.
    """
    return _read_pod(pod, namespace_prefix, wanted_only=True)


#: A state of the job container before it becomes a JobEvent: (state, its detail, previous,
#: exit code, reason); a None detail is the pod's own failure, when the container never ran.
_Seen = tuple[ContainerState, Mapping[str, Any] | None, bool, int | None, str | None]


def _read_pod(
    pod: Mapping[str, Any], prefix: str, *, wanted_only: bool
) -> tuple[JobEvent, ...]:
    # Each `type(x) is dict` test before a _mapping call is that call inlined for the plain
    # dicts a watch gives (and `type(x) is str and x` is _text): the pod dict's shape is
    # still checked at every step.
    metadata = (pod if type(pod) is dict else _mapping(pod)).get("metadata")
    if type(metadata) is not dict:
        metadata = _mapping(metadata)
    labels = metadata.get("labels")
    if type(labels) is not dict:
        labels = _mapping(labels)
    setting = labels.get(EMAILS_LABEL)
    emails = _EMAILS.get(setting, _NONE) if type(setting) is str else _NONE
    if emails is _NONE:
        return ()
    tool = _tool(metadata, labels, prefix)
    job = labels.get(NAME_LABEL)
    name = metadata.get("name")
    if tool is None or not (type(job) is str and job) or not (type(name) is str and name):
        return ()
    status = pod.get("status")
    if type(status) is not dict:
        status = _mapping(status)
    container = _named_or_first(status.get("containerStatuses"), _CONTAINER)
    pod_reason = status.get("reason")
    if not (type(pod_reason) is str and pod_reason):
        pod_reason = None

    seen: list[_Seen] = []
    last = container.get("lastState")
    last = (last if type(last) is dict else _mapping(last)).get("terminated")
    if type(last) is not dict:
        last = _mapping(last)
    if last:
        code = last.get("exitCode")
        seen.append((_TERMINATED, last, True, code if type(code) is int else None,
                     _text(last.get("reason"))))
    state = container.get("state")
    if type(state) is not dict:
        state = _mapping(state)
    for key, member in _STATES:
        detail = state.get(key)
        if detail is not None and (type(detail) is dict or isinstance(detail, Mapping)):
            reason = _text(detail.get("reason"))
            if member is not _WAITING or reason not in _CREATING:
                code = detail.get("exitCode") if member is _TERMINATED else None
                seen.append((member, detail, False, code if type(code) is int else None, reason))
            break
    else:
        if status.get("phase") == "Failed":
            # Evicted or past its deadline before the container ran: the pod's word is all.
            seen.append((_TERMINATED, None, False, None, pod_reason))
    if wanted_only and emails is not _ALL:
        seen = [s for s in seen if _wants(emails, s[0], exit_code=s[3], reason=s[4],
                                          pod_reason=pod_reason)]
    if not seen:
        return ()

    restarts = container.get("restartCount")
    started = status.get("startTime")
    source = _new(PodInfo)
    _init_pod_info(
        source,
        tool=tool,
        job=job,
        name=name,
        kind=_KINDS.get(_text(labels.get(COMPONENT_LABEL))),
        emails=emails,
        filelog=_text(labels.get(FILELOG_LABEL)) in _YES,
        log_files=_log_files(pod, _text(container.get("name"))),
        reason=pod_reason,
        started_at=_parse_time(started) if type(started) is str and started else None,
        restart_count=restarts if type(restarts) is int and restarts > 0 else 0,
    )
    if len(seen) == 1:
        return (_event(source, seen[0], status=status),)
    return tuple([_event(source, s, status=status) for s in seen])


# Calling a class with keyword arguments makes CPython 3.11 pack them in a dict for its
# __init__; calling the __init__ itself does not, which saves a quarter of building a
# PodInfo or a JobEvent (the objects are the same: attrs' __init__ is all the class does).
_new = object.__new__
_init_pod_info = PodInfo.__init__
_init_event = JobEvent.__init__


def _event(source: PodInfo, seen: _Seen, *, status: Mapping[str, Any]) -> JobEvent:
    state, detail, previous, exit_code, reason = seen
    event = _new(JobEvent)
    if detail is None:
        _init_event(event, source=source, state=state, reason=reason,
                    message=_text(status.get("message")))
        return event
    message = detail.get("message")
    started = detail.get("startedAt")
    finished = detail.get("finishedAt")
    _init_event(
        event,
        source=source,
        state=state,
        reason=reason,
        message=message if type(message) is str and message else None,
        exit_code=exit_code,
        started_at=_parse_time(started) if type(started) is str and started else None,
        finished_at=_parse_time(finished) if type(finished) is str and finished else None,
        previous=previous,
    )
    return event


def _named_or_first(items: object, name: object) -> Mapping[str, Any]:
    """The mapping in the list ``items`` named ``name``, else the first mapping, else empty."""
    if type(items) is not list:
        return _EMPTY
    if items and type(items[0]) is dict and items[0].get("name") == name:
        return items[0]  # the usual case, without the loop's iterator
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
    return _failed(event.state, event.exit_code, reason=event.reason,
                   pod_reason=event.source.reason)


def wants_email(event: JobEvent) -> bool:
    """Whether the job's emails setting asks for a mail about this event."""
    return _wants(event.source.emails, event.state, exit_code=event.exit_code,
                  reason=event.reason, pod_reason=event.source.reason)


# The policy on plain values, so that wanted_events decides before building an event.
def _failed(
    state: ContainerState, exit_code: int | None, *, reason: str | None, pod_reason: str | None
) -> bool:
    if state is not _TERMINATED:
        return False
    return exit_code not in (None, 0) or reason in KILLED_REASONS or pod_reason in KILLED_REASONS


def _wants(
    emails: Emails, state: ContainerState, *, exit_code: int | None, reason: str | None,
    pod_reason: str | None,
) -> bool:
    if emails is _ALL:
        return True
    if emails is _ONFINISH:
        return state is _TERMINATED
    if emails is _ONFAILURE:
        return _failed(state, exit_code, reason=reason, pod_reason=pod_reason)
    return False
