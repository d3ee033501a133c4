"""The emailer's pure core: event model, policy, digest timing and the composed email."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.job_pods import job_pod, terminated, waiting
from tjf_core.model import Emails, JobKind
from tjf_core.notification_digest import Digest, DigestBook, DigestEntry, DigestSettings
from tjf_core.notification_mail import (
    MailAddressing,
    compose_digest,
    compose_email,
    recipient,
    thread_id,
)
from tjf_core.notifications import (
    ContainerState,
    JobEvent,
    PodInfo,
    events_from_pod,
    is_failure,
    tool_of_pod,
    wants_email,
)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
WAIT = timedelta(seconds=60)
INTERVAL = timedelta(seconds=400)
ADDRESSING = MailAddressing(from_addr="noreply@toolforge.org", to_prefix="tools",
                            to_domain="tools.wmflabs.org")


#: JobEvent's names for the fields of its PodInfo.
POD_FIELDS = {"tool": "tool", "job": "job", "pod": "name", "kind": "kind", "emails": "emails",
              "filelog": "filelog", "log_files": "log_files", "pod_reason": "reason",
              "pod_started_at": "started_at", "restart_count": "restart_count"}


def event(base: JobEvent | None = None, **fields: Any) -> JobEvent:
    """An event (``base`` changed by ``fields``, else a failed continuous job's container)."""
    if base is None:
        base = JobEvent(
            source=PodInfo(tool="mytool", job="web", name="web-1", kind=JobKind.CONTINUOUS,
                           emails=Emails.ALL, filelog=True),
            state=ContainerState.TERMINATED, exit_code=1, finished_at=T0,
        )
    pod = {POD_FIELDS[k]: v for k, v in fields.items() if k in POD_FIELDS}
    own = {k: v for k, v in fields.items() if k not in POD_FIELDS}
    return attrs.evolve(base, source=attrs.evolve(base.source, **pod), **own)


# --- the event model ---------------------------------------------------------------------------


def test_a_running_pod_gives_one_running_event_with_the_job_details() -> None:
    [only] = events_from_pod(job_pod(emails="onfinish"))
    assert only.state is ContainerState.RUNNING
    assert (only.tool, only.job, only.kind, only.emails) == (
        "mytool", "web", JobKind.CONTINUOUS, Emails.ONFINISH)
    assert only.filelog
    assert only.log_files == ("/data/project/mytool/web.out", "/data/project/mytool/web.err")
    assert only.started_at == T0
    assert only.exit_code is None


def test_exit_code_zero_is_kept_as_zero() -> None:
    [only] = events_from_pod(job_pod(kind="one-off", phase="Succeeded", state=terminated(0)))
    assert only.state is ContainerState.TERMINATED
    assert only.exit_code == 0
    assert only.reason == "Completed"
    assert only.finished_at == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)


def test_a_crash_loop_shows_the_last_termination_and_the_current_state() -> None:
    pod = job_pod(state=waiting("CrashLoopBackOff", "back-off 5m0s"),
                  last_state=terminated(2), restarts=7)
    previous, current = events_from_pod(pod)
    assert (previous.state, previous.exit_code, previous.previous) == (
        ContainerState.TERMINATED, 2, True)
    assert (current.state, current.reason, current.previous) == (
        ContainerState.WAITING, "CrashLoopBackOff", False)
    assert current.message == "back-off 5m0s"
    assert previous.restart_count == current.restart_count == 7
    assert previous.pod_started_at == T0


def test_container_creation_is_not_news() -> None:
    assert events_from_pod(job_pod(state=waiting("ContainerCreating"), phase="Pending")) == ()


def test_a_pod_that_failed_before_its_container_ran_gives_the_pods_reason() -> None:
    pod = job_pod(kind="one-off", phase="Failed")
    pod["status"] = {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}
    [only] = events_from_pod(pod)
    assert (only.state, only.reason, only.message) == (
        ContainerState.TERMINATED, "Evicted", "low on memory")
    assert is_failure(only)


@pytest.mark.parametrize(("component", "kind"), [
    ("one-off", JobKind.ONE_OFF), ("scheduled", JobKind.SCHEDULED),
    ("continuous", JobKind.CONTINUOUS),
])
def test_the_kind_comes_from_the_component_label(component: str, kind: JobKind) -> None:
    [only] = events_from_pod(job_pod(kind=component))
    assert only.kind is kind


def test_the_namespace_decides_the_tool_not_the_label_a_tool_can_write() -> None:
    pod = job_pod(tool="alice")
    pod["metadata"]["labels"]["app.kubernetes.io/created-by"] = "bob"
    assert [e.tool for e in events_from_pod(pod)] == ["alice"]
    pod["metadata"]["namespace"] = "kube-system"
    assert events_from_pod(pod) == ()
    del pod["metadata"]["namespace"]
    assert tool_of_pod(pod) == "bob"


@pytest.mark.parametrize("value", [None, "none", "sometimes"])
def test_pods_without_a_usable_emails_label_give_nothing(value: str | None) -> None:
    pod = job_pod()
    labels = pod["metadata"]["labels"]
    del labels["jobs.toolforge.org/emails"]
    if value is not None:
        labels["jobs.toolforge.org/emails"] = value
    assert events_from_pod(pod) == ()


def test_log_files_are_unquoted_and_absent_without_filelog() -> None:
    [quoted] = events_from_pod(job_pod(filelog_stdout="my logs/out.txt"))
    assert quoted.log_files[0] == "/data/project/mytool/my logs/out.txt"
    [none] = events_from_pod(job_pod(filelog=False))
    assert (none.filelog, none.log_files) == (False, ())


CRASHING = job_pod(state=waiting("CrashLoopBackOff"), last_state=terminated(1), restarts=2)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=10,
)


@settings(max_examples=200)
@given(
    noise=st.dictionaries(st.sampled_from(["metadata", "spec", "status"]), json_values,
                          max_size=2),
    inner=st.dictionaries(st.sampled_from(["state", "lastState", "restartCount", "name"]),
                          json_values, max_size=3),
    labels=st.dictionaries(st.sampled_from(sorted(CRASHING["metadata"]["labels"])),
                           json_values, max_size=3),
    details=st.dictionaries(st.sampled_from(["reason", "exitCode", "finishedAt", "message"]),
                            json_values, max_size=3),
)
def test_malformed_pods_never_raise(
    noise: dict[str, Any], inner: dict[str, Any], labels: dict[str, Any],
    details: dict[str, Any],
) -> None:
    container = CRASHING["status"]["containerStatuses"][0]
    container = {**container, "state": {"waiting": details},
                 "lastState": {"terminated": {**container["lastState"]["terminated"], **details}},
                 **inner}
    status = {**CRASHING["status"], "containerStatuses": [container]}
    metadata = {**CRASHING["metadata"], "labels": {**CRASHING["metadata"]["labels"], **labels}}
    pod = {**CRASHING, "metadata": metadata, "status": status, **noise}
    for found in events_from_pod(pod):
        assert isinstance(found, JobEvent)


# --- the policy --------------------------------------------------------------------------------

TERMINATED, RUNNING, WAITING = (
    ContainerState.TERMINATED, ContainerState.RUNNING, ContainerState.WAITING)


@pytest.mark.parametrize(("emails", "state", "code", "reason", "wanted"), [
    (Emails.ALL, RUNNING, None, None, True),
    (Emails.ALL, WAITING, None, "CrashLoopBackOff", True),
    (Emails.ALL, TERMINATED, 0, "Completed", True),
    (Emails.ONFINISH, RUNNING, None, None, False),
    (Emails.ONFINISH, WAITING, None, "ImagePullBackOff", False),
    (Emails.ONFINISH, TERMINATED, 0, "Completed", True),
    (Emails.ONFINISH, TERMINATED, 3, "Error", True),
    (Emails.ONFAILURE, TERMINATED, 0, "Completed", False),
    (Emails.ONFAILURE, TERMINATED, 3, "Error", True),
    (Emails.ONFAILURE, TERMINATED, 137, "OOMKilled", True),
    (Emails.ONFAILURE, TERMINATED, None, "DeadlineExceeded", True),
    (Emails.ONFAILURE, TERMINATED, None, "Error", True),
    (Emails.ONFAILURE, RUNNING, None, None, False),
    (Emails.NONE, TERMINATED, 1, "Error", False),
])
def test_policy(emails: Emails, state: ContainerState, code: int | None, reason: str | None,
                wanted: bool) -> None:
    assert wants_email(event(emails=emails, state=state, exit_code=code, reason=reason)) is wanted


def test_a_pod_past_its_deadline_is_a_failure_even_with_exit_code_zero() -> None:
    assert is_failure(event(exit_code=0, reason="Completed", pod_reason="DeadlineExceeded"))


# --- the digest --------------------------------------------------------------------------------


def book(**fields: Any) -> DigestBook:
    return DigestBook(DigestSettings(group_wait=WAIT, group_interval=INTERVAL, **fields))


def test_the_first_digest_waits_group_wait_to_collect_related_events() -> None:
    digests = book()
    assert digests.add(event(pod="web-1"), now=T0)
    assert digests.add(event(pod="web-2"), now=T0 + timedelta(seconds=30))
    assert digests.due(now=T0 + timedelta(seconds=59)) == []
    assert digests.next_due() == T0 + WAIT
    [digest] = digests.due(now=T0 + WAIT)
    assert [e.event.pod for e in digest.entries] == ["web-1", "web-2"]
    assert digests.due(now=T0 + WAIT) == []
    assert len(digests) == 0


def test_after_a_digest_a_tool_gets_at_most_one_per_group_interval() -> None:
    digests = book()
    digests.add(event(pod="a"), now=T0)
    [_] = digests.due(now=T0 + WAIT)
    digests.add(event(pod="b"), now=T0 + WAIT + timedelta(seconds=1))
    digests.add(event(pod="c"), now=T0 + timedelta(seconds=300))
    assert digests.due(now=T0 + WAIT + INTERVAL - timedelta(seconds=1)) == []
    [second] = digests.due(now=T0 + WAIT + INTERVAL)
    assert [e.event.pod for e in second.entries] == ["b", "c"]


def test_tools_have_their_own_digests_and_timers() -> None:
    digests = book()
    digests.add(event(tool="a"), now=T0)
    digests.add(event(tool="b"), now=T0 + timedelta(seconds=30))
    assert [d.tool for d in digests.due(now=T0 + WAIT)] == ["a"]
    assert [d.tool for d in digests.due(now=T0 + timedelta(seconds=90))] == ["b"]


def test_the_same_event_seen_again_is_no_news() -> None:
    digests = book()
    assert digests.add(event(), now=T0)
    assert not digests.add(event(), now=T0 + timedelta(seconds=1))
    [digest] = digests.due(now=T0 + WAIT)
    assert len(digest.entries) == 1
    assert not digests.add(event(), now=T0 + timedelta(hours=1))
    assert digests.next_due() is None


def test_a_crash_loop_is_summarised_not_repeated() -> None:
    digests = book()
    crash = event(previous=True, restart_count=1, pod_started_at=T0)
    digests.add(crash, now=T0)
    [first] = digests.due(now=T0 + WAIT)
    assert not first.entries[0].repeated
    for restarts in range(2, 8):
        digests.add(event(crash, restart_count=restarts), now=T0 + WAIT * restarts)
    [second] = digests.due(now=T0 + WAIT * 8)
    [entry] = second.entries
    assert entry.repeated
    assert entry.event.restart_count == 7
    text = compose_digest(second, addressing=ADDRESSING, now=T0 + WAIT * 8).get_content()
    assert "keeps crashing: restarted 7 times since 10:00 UTC" in text


def test_a_digest_holds_at_most_max_entries_and_counts_the_rest() -> None:
    digests = book(max_entries=3)
    for number in range(5):
        digests.add(event(pod=f"p{number}"), now=T0)
    digests.add(event(pod="p4", previous=True, restart_count=3), now=T0)  # no double count
    [digest] = digests.due(now=T0 + WAIT)
    assert [e.event.pod for e in digest.entries] == ["p0", "p1", "p2"]
    assert digest.omitted == 2


def test_events_from_before_the_last_run_are_remembered_not_mailed() -> None:
    digests = DigestBook(history_before=T0)
    old = event(previous=True, restart_count=4, finished_at=T0 - timedelta(minutes=5))
    assert not digests.add(old, now=T0)
    assert not digests.add(old, now=T0)
    # The crash loop goes on after the restart: that is news, and summarised.
    assert digests.add(event(old, restart_count=5, finished_at=T0), now=T0)
    [digest] = digests.flush_all(now=T0)
    assert digest.entries[0].repeated


def test_what_a_pod_did_is_forgotten_after_forget_after() -> None:
    digests = book(forget_after=timedelta(hours=1))
    digests.add(event(), now=T0)
    digests.due(now=T0 + WAIT)
    digests.due(now=T0 + timedelta(hours=2))
    assert digests.add(event(), now=T0 + timedelta(hours=2))


def test_swapping_the_settings_moves_the_due_time() -> None:
    digests = book()
    digests.add(event(), now=T0)
    digests.settings = DigestSettings(group_wait=timedelta(seconds=120))
    assert digests.next_due() == T0 + timedelta(seconds=120)
    assert digests.due(now=T0 + WAIT) == []
    assert len(digests.due(now=T0 + timedelta(seconds=120))) == 1


def test_the_watermark_stays_before_the_oldest_pending_event() -> None:
    digests = book()
    assert digests.watermark(now=T0) == T0
    digests.add(event(finished_at=T0 - timedelta(seconds=10)), now=T0)
    assert digests.watermark(now=T0 + timedelta(seconds=30)) == T0 - timedelta(seconds=10)
    digests.flush_all(now=T0 + timedelta(seconds=30))
    assert digests.watermark(now=T0 + timedelta(seconds=40)) == T0 + timedelta(seconds=40)


sightings = st.lists(st.tuples(
    st.integers(0, 2), st.integers(0, 3), st.sampled_from(list(ContainerState)),
    st.sampled_from([None, 0, 1]), st.integers(0, 200)), max_size=60)


@settings(max_examples=200)
@given(sightings=sightings)
def test_every_distinct_event_is_mailed_exactly_once(
    sightings: list[tuple[int, int, ContainerState, int | None, int]],
) -> None:
    digests = book(max_entries=1000)
    now, found = T0, []
    for tool, pod, state, code, step in sightings:
        now += timedelta(seconds=step)
        digests.add(event(tool=f"t{tool}", pod=f"p{pod}", state=state, exit_code=code), now=now)
        found += digests.due(now=now)
    found += digests.flush_all(now=now)
    mailed = [e.event.fingerprint for d in found for e in d.entries]
    expected = {(f"t{t}", "web", f"p{p}", s.value, c) for t, p, s, c, _ in sightings}
    assert sorted(mailed, key=repr) == sorted(expected, key=repr)


# --- the email ---------------------------------------------------------------------------------


def digest_of(*events: JobEvent, omitted: int = 0) -> Digest:
    entries = tuple(DigestEntry(event=e, seen_at=T0) for e in events)
    return Digest(tool=events[0].tool, entries=entries, omitted=omitted)


def roundtrip(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(policy=email.policy.SMTP),
                                      policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_headers_address_date_and_subject() -> None:
    message = roundtrip(compose_digest(digest_of(event()), addressing=ADDRESSING, now=T0))
    assert message["From"] == "noreply@toolforge.org"
    assert message["To"] == "tools.mytool@tools.wmflabs.org"
    assert message["Subject"] == "[Toolforge] [mytool] notification about job web"
    assert message["Date"].datetime == T0
    assert message["Auto-Submitted"] == "auto-generated"
    two = digest_of(event(), event(job="cron", pod="cron-1"))
    assert compose_digest(two, addressing=ADDRESSING, now=T0)["Subject"] == (
        "[Toolforge] [mytool] notification about 2 jobs")


def test_recipient_without_a_prefix() -> None:
    assert recipient("x", addressing=MailAddressing(to_prefix="", to_domain="d.org")) == "x@d.org"


def test_message_ids_are_unique_and_stable_and_emails_thread_per_job() -> None:
    first = compose_digest(digest_of(event()), addressing=ADDRESSING, now=T0)
    again = compose_digest(digest_of(event()), addressing=ADDRESSING, now=T0)
    later = compose_digest(digest_of(event(pod="web-2")), addressing=ADDRESSING,
                           now=T0 + INTERVAL)
    assert first["Message-ID"] == again["Message-ID"] != later["Message-ID"]
    assert str(first["Message-ID"]).endswith("@toolforge.org>")
    thread = thread_id("mytool", "web", addressing=ADDRESSING)
    assert first["In-Reply-To"] == first["References"] == later["References"] == thread
    both = compose_digest(digest_of(event(), event(job="cron")), addressing=ADDRESSING, now=T0)
    assert str(both["References"]).split() == [
        thread, thread_id("mytool", "cron", addressing=ADDRESSING)]


def test_body_is_utf8_with_non_ascii_job_output_and_control_characters_removed() -> None:
    logs = {"web": ["Grüße aus Köln ✓", "日本語のログ", "\x1b[31mred\x07"]}
    message = roundtrip(compose_digest(digest_of(event()), addressing=ADDRESSING, now=T0,
                                       logs=logs))
    assert message.get_content_charset() == "utf-8"
    text = message.get_content()
    assert "| Grüße aus Köln ✓" in text
    assert "| 日本語のログ" in text
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "The last 3 lines of its output (its log file):" in text


def test_every_termination_prints_its_exit_code_zero_included() -> None:
    text = compose_digest(digest_of(event(exit_code=0, reason="Completed")),
                          addressing=ADDRESSING, now=T0).get_content()
    assert "finished successfully, exit code 0 (Completed)" in text
    assert "2024-05-01 10:00:00 UTC" in text
    oom = compose_digest(digest_of(event(exit_code=137, reason="OOMKilled")),
                         addressing=ADDRESSING, now=T0).get_content()
    assert "failed, exit code 137 (OOMKilled): it ran out of memory" in oom


def test_the_email_says_what_each_job_is_and_how_to_stop_the_emails() -> None:
    text = compose_digest(digest_of(event(kind=JobKind.SCHEDULED, emails=Emails.ONFAILURE)),
                          addressing=ADDRESSING, now=T0, logs={}).get_content()
    assert 'Job "web" (scheduled job, emails=onfailure)' in text
    assert "--emails none" in text
    assert "toolforge-jobs delete web" in text


def test_left_out_lines_are_counted() -> None:
    text = compose_digest(digest_of(event(), omitted=4), addressing=ADDRESSING,
                          now=T0).get_content()
    assert "... and 4 more events" in text


def test_composing_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compose_digest(digest_of(event()), addressing=ADDRESSING, now=datetime(2024, 5, 1))


def test_running_and_waiting_states_read_as_sentences() -> None:
    text = compose_digest(
        digest_of(event(state=RUNNING, exit_code=None, started_at=T0, finished_at=None),
                  event(state=WAITING, exit_code=None, reason="ImagePullBackOff",
                        finished_at=None)),
        addressing=ADDRESSING, now=T0).get_content()
    assert "started running (pod web-1)" in text
    assert "is waiting: ImagePullBackOff" in text


log_lines = st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=120),
                     max_size=5)


@settings(max_examples=200)
@given(
    # Job names of every length, so that long thread ids need the email package's folding.
    jobs=st.lists(st.integers(1, 63), min_size=1, max_size=6, unique=True).map(
        lambda lengths: [("j" * n)[:-1] + str(n % 10) for n in lengths]),
    lines=log_lines,
    sender=st.sampled_from(["noreply@toolforge.org", "Tøølforge <noreply@toolforge.org>"]),
)
def test_the_fast_bytes_are_the_email_packages_bytes(
    jobs: list[str], lines: list[str], sender: str,
) -> None:
    digest = digest_of(*(event(job=job, pod=f"{job}-1") for job in jobs))
    addressing = MailAddressing(from_addr=sender)
    composed = compose_email(digest, addressing=addressing, now=T0, logs={jobs[0]: lines})
    assert composed.smtp_bytes() == composed.message().as_bytes(policy=email.policy.SMTP)
    assert composed.message_id == composed.message()["Message-ID"]
