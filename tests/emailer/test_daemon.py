"""The daemon: pods in, emails out, through the spool, with its tasks owned and cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import attrs

from tests.emailer.conftest import Server, free_port, settings_for
from tests.job_pods import job_pod, terminated, waiting
from tjf_core.notification_digest import DigestSettings
from tjf_core.notification_mail import MailAddressing
from tjf_core.notifications import JobEvent
from tjf_core.testing import FakeClock
from tjf_emailer.daemon import EmailerDaemon, Pipeline
from tjf_emailer.settings import EmailerSettings
from tjf_emailer.spool import Spool

T0 = datetime(2024, 5, 1, 10, 6, tzinfo=UTC)


def failed_pod(job: str = "web", *, at: str = "2024-05-01T10:05:00Z", **fields: Any) -> dict[
        str, Any]:
    return job_pod(job=job, kind="one-off", emails="onfailure", phase="Failed",
                   state=terminated(3, at=at), **fields)


def emails_in(spool: Spool) -> list[EmailMessage]:
    found = []
    for item in spool.pending():
        message = message_from_bytes(spool.read(item), policy=default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


async def pods_of(*pods: Mapping[str, Any]) -> AsyncIterator[Mapping[str, Any]]:
    for pod in pods:
        yield pod


def test_the_pipeline_turns_pods_into_one_digest_email() -> None:
    pipeline = Pipeline(EmailerSettings())
    crash = job_pod(state=waiting("CrashLoopBackOff"), last_state=terminated(1), restarts=2)
    assert pipeline.feed(crash, now=T0) == 2
    assert pipeline.feed(crash, now=T0) == 0
    assert pipeline.feed(failed_pod("cron"), now=T0) == 1
    assert pipeline.feed(job_pod(job="quiet", emails="none"), now=T0) == 0
    assert pipeline.due(now=T0) == []
    [digest] = pipeline.due(now=T0 + timedelta(seconds=60))
    message = pipeline.compose(digest, now=T0).message()
    assert message["Subject"] == "[Toolforge] [mytool] notification about 2 jobs"


def test_due_digests_are_spooled_with_the_last_lines_of_the_log(tmp_path: Path) -> None:
    home = tmp_path / "home" / "mytool"
    home.mkdir(parents=True)
    (home / "web.out").write_text("".join(f"line {n}\n" for n in range(20)) + "Fehler: ü ✗\n")
    settings = EmailerSettings()
    settings = attrs.evolve(
        settings, logs=attrs.evolve(settings.logs, lines=3,
                                    home_template=str(tmp_path / "home" / "{tool}")),
        send=attrs.evolve(settings.send, spool_dir=tmp_path / "spool"))
    clock = FakeClock(T0)
    daemon = EmailerDaemon(settings=settings, clock=clock)
    pod = failed_pod()
    pod["spec"]["containers"][0]["command"][3] = f"exec 1>>{home}/web.out;exec 2>>{home}/web.out;x"
    assert asyncio.run(daemon.consume(pods_of(pod))) == 1
    assert asyncio.run(daemon.compose_due()) == 0
    clock.advance(60)
    assert asyncio.run(daemon.compose_due()) == 1
    [message] = emails_in(daemon.spool)
    text = message.get_content().replace("\r\n", "\n")
    assert "failed, exit code 3 (Error)" in text
    assert "| line 18\n    | line 19\n    | Fehler: ü ✗\n" in text
    assert "line 17" not in text


def test_a_log_file_outside_the_tools_home_is_never_quoted(tmp_path: Path) -> None:
    home = tmp_path / "home" / "mytool"
    home.mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("password=hunter2\n")
    os.symlink(secret, home / "web.out")
    settings = attrs.evolve(EmailerSettings(), logs=attrs.evolve(
        EmailerSettings().logs, home_template=str(tmp_path / "home" / "{tool}")))
    daemon = EmailerDaemon(settings=settings, spool=Spool(tmp_path / "spool"),
                           clock=FakeClock(T0))
    pod = failed_pod()
    pod["spec"]["containers"][0]["command"][3] = f"exec 1>>{home}/web.out;exec 2>>{home}/web.out;x"
    daemon.pipeline.feed(pod, now=T0)
    asyncio.run(daemon.compose_due(everything=True))
    [message] = emails_in(daemon.spool)
    assert "hunter2" not in message.get_content()


def test_settings_swapped_live_apply_to_the_next_email(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    settings = settings_for(free_port(), tmp_path)
    daemon = EmailerDaemon(settings=settings, clock=clock)
    daemon.pipeline.feed(failed_pod(), now=clock())
    daemon.update_settings(attrs.evolve(
        settings, addressing=MailAddressing(to_domain="example.org"),
        digest=DigestSettings(group_wait=timedelta(seconds=5))))
    clock.advance(5)
    assert asyncio.run(daemon.compose_due()) == 1
    assert emails_in(daemon.spool)[0]["To"] == "tools.mytool@example.org"


def test_the_daemon_owns_its_tasks_and_delivers(smtp_server: Server, tmp_path: Path) -> None:
    settings = settings_for(smtp_server.port, tmp_path)
    settings = attrs.evolve(settings, digest=DigestSettings(group_wait=timedelta(0)))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def main() -> tuple[asyncio.Task[None], ...]:
        daemon = EmailerDaemon(settings=settings, tick=0.02)
        async with daemon:
            tasks = daemon.tasks
            assert len(tasks) == 2
            assert not any(t.done() for t in tasks)
            await daemon.consume(pods_of(failed_pod(at=now), failed_pod(at=now)))
            deadline = time.monotonic() + 10
            while not smtp_server.recorder.messages and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        assert daemon.tasks == ()
        return tasks

    tasks = asyncio.run(main())
    assert all(t.cancelled() for t in tasks)
    [message] = [message_from_bytes(m, policy=default) for m in smtp_server.recorder.messages]
    assert message["Subject"] == "[Toolforge] [mytool] notification about job web"
    assert Spool(tmp_path).pending() == []


def test_a_restart_delivers_the_spool_and_does_not_repeat_mailed_events(
    smtp_server: Server, tmp_path: Path,
) -> None:
    clock = FakeClock(datetime(2024, 5, 1, 9, 51, tzinfo=UTC))
    pod = failed_pod(at="2024-05-01T09:50:00Z")
    # The first run composes while the mail server is down, then stops.
    first = EmailerDaemon(settings=settings_for(free_port(), tmp_path), clock=clock)
    first.pipeline.feed(pod, now=clock())
    clock.advance(300)

    async def first_run() -> None:
        async with first:
            pass

    asyncio.run(first_run())
    assert len(first.spool.pending()) == 1  # composed, not sent
    # The second run finds the spool, delivers it, and sees the same pod as already mailed.
    second = EmailerDaemon(settings=settings_for(smtp_server.port, tmp_path), clock=clock)
    assert second.pipeline.feed(pod, now=clock()) == 0
    assert asyncio.run(second.sender.send_round()).sent == 1
    assert asyncio.run(second.sender.send_round()).sent == 0
    assert len(smtp_server.recorder.messages) == 1
    assert second.spool.pending() == []


def test_a_cancelled_composition_is_finished_later_exactly_once(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_logs(event: JobEvent, lines: int, home_template: str) -> list[str]:
        entered.set()
        release.wait(5)
        return ["the log"]

    clock = FakeClock(T0)
    daemon = EmailerDaemon(settings=settings_for(free_port(), tmp_path), clock=clock,
                           read_logs=slow_logs)
    pod = failed_pod()
    pod["metadata"]["labels"]["jobs.toolforge.org/filelog"] = "yes"

    async def main() -> int:
        daemon.pipeline.feed(pod, now=clock())
        task = asyncio.create_task(daemon.compose_due(everything=True))
        while not entered.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await daemon.compose_due()

    assert asyncio.run(main()) == 1
    [message] = emails_in(daemon.spool)
    assert "| the log" in message.get_content()
