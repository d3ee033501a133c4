"""The emailer pipeline's fast paths give what the plain code they replace gives.

The emailer reads every pod a watch sends, so its hot paths are specialised: the pod reader
is inlined (and :func:`wanted_events` builds only the events the policy wants), times in the
email are spelt out rather than formatted by strftime or the email package, and the email's
bytes skip the email package. Each is held here to a plain restatement: the reader to one
written with :mod:`tjf_core.pods`' generic helpers, the times to strftime and
:func:`email.utils.format_datetime`, the bytes to the email package, and a whole scenario
(pods in, emails out) to golden emails written before the fast paths existed.
"""

from __future__ import annotations

import email.policy
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.job_pods import job_pod, running, terminated, waiting
from tjf_core.model import Emails, JobKind
from tjf_core.notification_digest import DigestBook, DigestSettings
from tjf_core.notification_mail import (
    ComposedEmail,
    MailAddressing,
    _date_header,
    _id_stamp,
    _since,
    _when,
    compose_email,
)
from tjf_core.notifications import (
    ContainerState,
    JobEvent,
    PodInfo,
    events_from_pod,
    wanted_events,
    wants_email,
)
from tjf_core.pods import dicts_at, int_at, text_at, time_at, value_at
from tjf_core.readback import split_log_redirects

GOLDEN = Path(__file__).parent / "golden" / "emails"
TERMINATED, RUNNING, WAITING = (
    ContainerState.TERMINATED, ContainerState.RUNNING, ContainerState.WAITING)


# --- the pod reader ----------------------------------------------------------------------------


def _named_or_first(items: list[Mapping[str, Any]], name: object) -> Mapping[str, Any]:
    for item in items:
        if item.get("name") == name:
            return item
    return next((item for item in items if item), {})


def _reference_log_files(pod: object, container: str | None) -> tuple[str, ...]:
    command = _named_or_first(dicts_at(pod, "spec", "containers"), container).get("command")
    if not isinstance(command, list) or not 3 <= len(command) <= 4:
        return ()
    if command[:2] != ["/bin/sh", "-c"] or (len(command) == 4 and command[2] != "--"):
        return ()
    if not isinstance(command[-1], str):
        return ()
    redirects = split_log_redirects(command[-1])
    if redirects is None:
        return ()
    out, err, _ = redirects
    return (out,) if out == err else (out, err)


def reference_events(pod: object, prefix: str = "tool-") -> tuple[JobEvent, ...]:
    """events_from_pod as the module docstring says it, with nothing made fast."""
    labels = value_at(pod, "metadata", "labels")
    namespace = text_at(pod, "metadata", "namespace")
    if namespace is None:
        tool = text_at(labels, "app.kubernetes.io/created-by")
    elif namespace.startswith(prefix) and len(namespace) > len(prefix):
        tool = namespace[len(prefix):]
    else:
        tool = None
    job = text_at(labels, "app.kubernetes.io/name")
    name = text_at(pod, "metadata", "name")
    emails = {m.value: m for m in Emails}.get(text_at(labels, "jobs.toolforge.org/emails") or "")
    if tool is None or job is None or name is None or emails in (None, Emails.NONE):
        return ()
    assert emails is not None
    status = value_at(pod, "status")
    container = _named_or_first(dicts_at(status, "containerStatuses"), "job")
    kinds = {"jobs": JobKind.ONE_OFF, "cronjobs": JobKind.SCHEDULED,
             "deployments": JobKind.CONTINUOUS}
    source = PodInfo(
        tool=tool, job=job, name=name,
        kind=kinds.get(text_at(labels, "app.kubernetes.io/component") or ""),
        emails=emails,
        filelog=text_at(labels, "jobs.toolforge.org/filelog") in {"yes", "Yes", "YES", "true",
                                                                  "True"},
        log_files=_reference_log_files(pod, text_at(container, "name")),
        reason=text_at(status, "reason"),
        started_at=time_at(status, "startTime"),
        restart_count=max(int_at(container, "restartCount") or 0, 0),
    )

    def event(state: ContainerState, detail: Mapping[str, Any], *, previous: bool) -> JobEvent:
        return JobEvent(
            source=source, state=state, reason=text_at(detail, "reason"),
            message=text_at(detail, "message"),
            exit_code=int_at(detail, "exitCode") if state is TERMINATED else None,
            started_at=time_at(detail, "startedAt"), finished_at=time_at(detail, "finishedAt"),
            previous=previous,
        )

    found = []
    last = value_at(container, "lastState", "terminated")
    if isinstance(last, Mapping) and last:
        found.append(event(TERMINATED, last, previous=True))
    state = value_at(container, "state")
    for key, member in (("terminated", TERMINATED), ("running", RUNNING), ("waiting", WAITING)):
        detail = value_at(state, key)
        if isinstance(detail, Mapping):
            creating = text_at(detail, "reason") in {"ContainerCreating", "PodInitializing"}
            if not (member is WAITING and creating):
                found.append(event(member, detail, previous=False))
            return tuple(found)
    if value_at(status, "phase") == "Failed":
        found.append(JobEvent(source=source, state=TERMINATED, reason=source.reason,
                              message=text_at(status, "message")))
    return tuple(found)


def reference_wants(event: JobEvent) -> bool:
    """wants_email as the emails setting's documentation says it."""
    killed = {"OOMKilled", "DeadlineExceeded", "Error", "Evicted"}
    failed = event.state is TERMINATED and (
        event.exit_code not in (None, 0) or event.reason in killed or event.pod_reason in killed)
    return {Emails.ALL: True, Emails.ONFINISH: event.state is TERMINATED,
            Emails.ONFAILURE: failed}.get(event.emails, False)


anything = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=2),
    max_leaves=4,
)


def sometimes_odd(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``values``; now and then any JSON value, or a mapping that is not a dict."""
    odd = st.one_of(anything, values.map(
        lambda v: MappingProxyType(v) if isinstance(v, dict) else v))
    return st.integers(0, 11).flatmap(lambda draw: values if draw else odd)


def mostly(usual: Any, *others: Any) -> st.SearchStrategy[Any]:
    """``usual`` seven times in eight, else one of ``others`` (None: the key is missing)."""
    return st.integers(0, 7).flatmap(lambda draw: st.just(usual) if draw else
                                     st.sampled_from(others))


def present(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of ``fields``, those drawn as None left out."""
    return st.fixed_dictionaries(fields).map(
        lambda d: {k: v for k, v in d.items() if v is not None})


stamps = st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-02T23:59:59+02:00", "not a time",
                          "", 5, None])
details = present({
    "reason": st.sampled_from(["Completed", "Error", "OOMKilled", "DeadlineExceeded",
                               "CrashLoopBackOff", "ContainerCreating", "PodInitializing",
                               "", None, 3]),
    "message": st.sampled_from(["back-off", "", None]),
    "exitCode": st.sampled_from([0, 1, 137, -1, True, "1", None]),
    "startedAt": stamps, "finishedAt": stamps,
})
states = st.dictionaries(st.sampled_from(["terminated", "running", "waiting"]),
                         sometimes_odd(details), min_size=1, max_size=2)
container_statuses = present({
    "name": mostly("job", "sidecar", "", None),
    "restartCount": st.sampled_from([0, 1, 7, -2, True, "3", None]),
    "state": sometimes_odd(states),
    "lastState": sometimes_odd(st.dictionaries(st.just("terminated"), sometimes_odd(details),
                                               max_size=1)),
})
commands = st.sampled_from([
    ["/bin/sh", "-c", "--", "exec 1>>/data/project/t/j.out;exec 2>>/data/project/t/j.err;./x"],
    ["/bin/sh", "-c", "exec 1>>/data/project/t/j.log;exec 2>&1;./x"],
    ["/bin/sh", "-c", "--", "./x"],
    ["/bin/bash", "-c", "--", "exec 1>>/a.out;./x"],
    ["/bin/sh", "-c", "--", 5],
    "/bin/sh -c ./x",
    None,
])
spec_containers = present({"name": mostly("job", "sidecar", None), "command": commands})
labels = present({
    "app.kubernetes.io/name": mostly("web", "", None, 7),
    "app.kubernetes.io/created-by": st.sampled_from(["alice", "", None]),
    "app.kubernetes.io/component": st.sampled_from(["jobs", "cronjobs", "deployments", "x",
                                                    None]),
    "jobs.toolforge.org/emails": st.integers(0, 7).flatmap(
        lambda draw: st.sampled_from(["all", "onfinish", "onfailure"]) if draw else
        st.sampled_from(["none", "sometimes", "", None, ["all"]])),
    "jobs.toolforge.org/filelog": st.sampled_from(["yes", "True", "no", None]),
})
pods = present({
    "metadata": sometimes_odd(present({
        "name": mostly("web-1", "", None),
        "namespace": mostly("tool-alice", "tool-", "kube-system", "", None, 3),
        "labels": sometimes_odd(labels),
    })),
    "spec": sometimes_odd(present({
        "containers": sometimes_odd(st.lists(sometimes_odd(spec_containers), min_size=1,
                                             max_size=2))})),
    "status": sometimes_odd(present({
        "phase": st.sampled_from(["Running", "Failed", "Succeeded", "Pending", None]),
        "reason": st.sampled_from(["Evicted", "DeadlineExceeded", "", None]),
        "message": st.sampled_from(["low on memory", None]),
        "startTime": stamps,
        "containerStatuses": sometimes_odd(st.lists(sometimes_odd(container_statuses),
                                                    min_size=1, max_size=2)),
    })),
})


@settings(max_examples=400)
@given(pod=sometimes_odd(pods), prefix=st.sampled_from(["tool-", "", "tools."]))
def test_the_fast_reader_reads_pods_as_the_plain_one(pod: Any, prefix: str) -> None:
    expected = reference_events(pod, prefix)
    assert events_from_pod(pod, namespace_prefix=prefix) == expected
    wanted = tuple(e for e in expected if reference_wants(e))
    assert tuple(e for e in expected if wants_email(e)) == wanted
    assert wanted_events(pod, namespace_prefix=prefix) == wanted


@pytest.mark.parametrize("pod", [
    job_pod(emails="onfailure"),
    job_pod(emails="onfinish", kind="one-off", phase="Succeeded", state=terminated(0)),
    job_pod(emails="onfailure", kind="one-off", phase="Succeeded", state=terminated(0)),
    job_pod(emails="onfailure", state=waiting("CrashLoopBackOff"), last_state=terminated(1),
            restarts=3),
    job_pod(emails="all", state=running()),
])
def test_wanted_events_are_the_events_the_policy_wants(pod: dict[str, Any]) -> None:
    assert wanted_events(pod) == tuple(e for e in events_from_pod(pod) if wants_email(e))


# --- times in the email ------------------------------------------------------------------------

moments = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 30))
offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23),
                                            max_value=timedelta(hours=23)))


@settings(max_examples=300)
@given(moment=moments.map(lambda m: m.replace(tzinfo=UTC)))
def test_spelt_out_times_are_what_strftime_and_the_email_package_write(moment: datetime) -> None:
    assert _date_header(moment) == format_datetime(moment, usegmt=True)
    assert _id_stamp(moment) == moment.strftime("%Y%m%d%H%M%S%f")
    assert _when(moment) == moment.isoformat(" ", "seconds")[:19] + " UTC"


@settings(max_examples=300)
@given(moment=moments, zone=offsets, now=moments, now_zone=offsets)
def test_since_is_what_strftime_writes(
    moment: datetime, zone: timezone, now: datetime, now_zone: timezone,
) -> None:
    moment, now = moment.replace(tzinfo=zone), now.replace(tzinfo=now_zone)
    utc = moment.astimezone(UTC)
    same_day = utc.date() == now.astimezone(UTC).date()
    assert _since(moment, now) == " since " + utc.strftime(
        "%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC")
    assert _when(moment) == utc.isoformat(" ", "seconds")[:19] + " UTC"


# --- the email's bytes -------------------------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x24FF,
                                    exclude_categories=["Cs", "Cc"]), max_size=90)
ids = st.lists(st.from_regex(r"<[a-z0-9.]{1,80}@[a-z.]{1,20}>", fullmatch=True), max_size=3)
MIME = (("MIME-Version", "1.0"), ("Content-Type", 'text/plain; charset="utf-8"'),
        ("Content-Transfer-Encoding", "quoted-printable"))


@settings(max_examples=300)
@given(
    plain=st.dictionaries(st.sampled_from(["Subject", "X-Toolforge-Tool", "Auto-Submitted"]),
                          header_text).map(lambda headers: list(headers.items())),
    threads=ids,
    text=st.text(st.characters(exclude_categories=["Cs"]), max_size=200),
)
def test_the_fast_bytes_are_the_email_packages_for_any_headers(
    plain: list[tuple[str, str]], threads: list[str], text: str,
) -> None:
    headers: list[tuple[str, str | tuple[str, ...]]] = [*plain]
    headers += [("In-Reply-To", tuple(threads)), ("References", tuple(threads)), *MIME]
    composed = ComposedEmail(headers=tuple(headers), text=text)
    assert composed.smtp_bytes() == composed.message().as_bytes(policy=email.policy.SMTP)


# --- a whole scenario, against emails written before the fast paths ----------------------------

T0 = datetime(2024, 5, 1, 23, 50, tzinfo=UTC)
ADDRESSING = MailAddressing(from_addr="Toolforge <noreply@toolforge.org>", to_prefix="tools",
                            to_domain="toolforge.org")


def _stamp(offset: int) -> str:
    return (T0 + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sightings() -> list[tuple[int, dict[str, Any]]]:
    """(seconds after T0, pod): crash loops across midnight, successes, kills, an eviction,
    a tool with more lines than a digest holds, and the watch repeating itself."""
    found: list[tuple[int, dict[str, Any]]] = []
    for restarts, at in ((1, 60), (2, 200), (3, 900), (5, 1500)):
        crash = terminated(1, at=_stamp(at - 5), started=_stamp(at - 30))
        found += [(at, job_pod(tool="alice", job="web", pod="web-7f9-abcde", restarts=restarts,
                               state=waiting("CrashLoopBackOff", "back-off 40s"),
                               last_state=crash, started=_stamp(0)))] * 2
    found.append((30, job_pod(tool="alice", job="backup", pod="backup-1", kind="one-off",
                              emails="onfinish", phase="Succeeded",
                              state=terminated(0, at=_stamp(25)))))
    found.append((45, job_pod(tool="alice", job="api", pod="api-1", emails="all",
                              state=running(_stamp(40)))))
    found.append((70, job_pod(tool="carol", job="report", pod="report-1", kind="scheduled",
                              emails="onfailure", phase="Failed",
                              state=terminated(137, reason="OOMKilled", at=_stamp(66)))))
    found.append((75, job_pod(tool="carol", job="report", pod="report-2", kind="scheduled",
                              emails="onfailure", phase="Succeeded",
                              state=terminated(0, at=_stamp(70)))))
    evicted = job_pod(tool="dave", job="batch", pod="batch-1", kind="one-off", emails="all")
    evicted["status"] = {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}
    found.append((100, evicted))
    for number in range(6):
        found.append((120 + number, job_pod(
            tool="bob", job=f"task{number % 2}", pod=f"task-{number}", kind="one-off",
            emails="onfailure", phase="Failed", state=terminated(2, at=_stamp(115)))))
    found.append((-600, job_pod(tool="erin", job="old", pod="old-1", kind="one-off",
                                emails="all", phase="Failed",
                                state=terminated(1, at=_stamp(-700)))))
    return sorted(found, key=lambda sighting: sighting[0])


LOGS = {"web": ["Grüße aus Köln ✓", "\x1b[31mred\x07", "x" * 400, "last = line  "]}


def scenario_emails() -> list[bytes]:
    """The emails of the scenario, through the public API only (so the goldens could be
    written by the code before the fast paths)."""
    book = DigestBook(DigestSettings(max_entries=4), history_before=T0 - timedelta(minutes=5))
    sightings = _sightings()
    found = []
    now = T0 - timedelta(minutes=15)
    while now <= T0 + timedelta(hours=1):
        while sightings and T0 + timedelta(seconds=sightings[0][0]) <= now:
            _, pod = sightings.pop(0)
            for event in events_from_pod(pod):
                if wants_email(event):
                    book.add(event, now=now)
        for digest in book.due(now=now):
            found.append(compose_email(digest, addressing=ADDRESSING, now=now,
                                       logs=LOGS if digest.tool == "alice" else None))
        now += timedelta(seconds=10)
    found += [compose_email(d, addressing=ADDRESSING, now=now) for d in book.flush_all(now=now)]
    return [composed.smtp_bytes() for composed in found]


def test_the_scenario_gives_the_golden_emails() -> None:
    emails = scenario_emails()
    if os.environ.get("TJF_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        for old in GOLDEN.glob("*.eml"):
            old.unlink()
        for number, message in enumerate(emails):
            (GOLDEN / f"{number:02d}.eml").write_bytes(message)
    golden = [path.read_bytes() for path in sorted(GOLDEN.glob("*.eml"))]
    assert len(golden) == 7, "the golden emails are missing: TJF_UPDATE_GOLDEN=1 writes them"
    assert emails == golden
