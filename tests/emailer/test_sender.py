"""The sender against a real SMTP server (aiosmtpd): retries, refusals, TLS, rate, dry run."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import attrs
import pytest

from tests.emailer.conftest import PASSWORD, USER, LocalCA, Server, free_port, settings_for
from tjf_core.testing import FakeClock
from tjf_emailer.sender import RoundResult, Sender
from tjf_emailer.settings import EmailerSettings, SmtpSecurity
from tjf_emailer.spool import Spool

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def spool_emails(spool: Spool, count: int, *, text: str = "Grüße ✓") -> list[str]:
    ids = []
    for number in range(count):
        message = EmailMessage()
        message["From"] = "noreply@toolforge.org"
        message["To"] = f"tools.tool{number}@toolforge.org"
        message["Subject"] = f"[Toolforge] [tool{number}] notification about job web"
        message["Message-ID"] = f"<m{number}@toolforge.org>"
        message.set_content(f"{text} {number}\n", charset="utf-8")
        spool.put(message.as_bytes(policy=SMTP), message_id=message["Message-ID"], now=T0)
        ids.append(message["Message-ID"])
    return ids


def make_sender(settings: EmailerSettings, clock: FakeClock) -> tuple[Sender, Spool]:
    spool = Spool(settings.send.spool_dir)
    return Sender(spool=spool, settings=lambda: settings, clock=clock), spool


def test_refused_for_now_then_accepted_delivers_every_email_exactly_once(
    smtp_server: Server, tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    sender, spool = make_sender(settings_for(smtp_server.port, tmp_path), clock)
    ids = spool_emails(spool, 3)
    smtp_server.recorder.refusals = 2
    first = asyncio.run(sender.send_round())
    assert (first.sent, first.deferred, first.server_failed) == (1, 2, False)
    assert asyncio.run(sender.send_round()) == RoundResult()  # both wait for their backoff
    clock.advance(1.0)
    assert asyncio.run(sender.send_round()).sent == 2
    assert asyncio.run(sender.send_round()) == RoundResult()
    assert sorted(smtp_server.recorder.message_ids()) == sorted(ids)
    assert spool.pending() == []
    envelope = smtp_server.recorder.envelopes[0]
    assert envelope[0] == "noreply@toolforge.org"
    assert envelope[1][0].endswith("@toolforge.org")


def test_a_permanent_refusal_is_buried_not_retried(smtp_server: Server, tmp_path: Path) -> None:
    sender, spool = make_sender(settings_for(smtp_server.port, tmp_path), FakeClock(T0))
    spool_emails(spool, 2)
    smtp_server.recorder.refusals = 1
    smtp_server.recorder.answer = "554 5.6.0 refused for good"
    result = asyncio.run(sender.send_round())
    assert (result.sent, result.buried) == (1, 1)
    assert [p.name for p in spool.dead.iterdir()]
    assert spool.pending() == []


def test_an_unreachable_server_backs_off_exponentially_and_loses_nothing(tmp_path: Path) -> None:
    settings = settings_for(free_port(), tmp_path)
    sender, spool = make_sender(settings, FakeClock(T0))
    spool_emails(spool, 2)
    delays = []
    for _ in range(6):
        result = asyncio.run(sender.send_round())
        assert result.server_failed
        delays.append(sender.delay_after(result))
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert sender.delay_after(RoundResult(sent=1)) == settings.send.round_seconds
    assert len(spool.pending()) == 2


def test_the_rate_limit_is_respected(smtp_server: Server, tmp_path: Path) -> None:
    settings = settings_for(smtp_server.port, tmp_path, max_per_round=10, round_seconds=7.0)
    spool = Spool(tmp_path)
    spool_emails(spool, 25)
    delivered_at_sleep: list[tuple[float, int]] = []

    class Done(Exception):
        pass

    async def sleep(seconds: float) -> None:
        delivered_at_sleep.append((seconds, len(smtp_server.recorder.messages)))
        if len(delivered_at_sleep) == 4:
            raise Done

    sender = Sender(spool=spool, settings=lambda: settings, clock=FakeClock(T0), sleep=sleep)
    with pytest.raises(Done):
        asyncio.run(sender.run())
    assert delivered_at_sleep == [(7.0, 10), (7.0, 20), (7.0, 25), (7.0, 25)]


def test_starttls_with_a_test_ca_and_login(starttls_server: Server, tmp_path: Path,
                                           test_ca: LocalCA) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    base = settings_for(starttls_server.port, tmp_path / "spool")
    settings = attrs.evolve(base, smtp=attrs.evolve(
        base.smtp, security=SmtpSecurity.STARTTLS, ca_file=test_ca.ca_file, username=USER,
        password_file=password_file))
    sender, spool = make_sender(settings, FakeClock(T0))
    ids = spool_emails(spool, 2)
    assert asyncio.run(sender.send_round()).sent == 2
    assert sorted(starttls_server.recorder.message_ids()) == sorted(ids)


def test_a_server_certificate_that_is_not_trusted_is_refused(
    starttls_server: Server, tmp_path: Path,
) -> None:
    base = settings_for(starttls_server.port, tmp_path)
    settings = attrs.evolve(base, smtp=attrs.evolve(base.smtp, security=SmtpSecurity.STARTTLS))
    sender, spool = make_sender(settings, FakeClock(T0))
    spool_emails(spool, 1)
    assert asyncio.run(sender.send_round()).server_failed
    assert starttls_server.recorder.messages == []
    assert len(spool.pending()) == 1


def test_not_for_real_logs_the_email_instead(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(free_port(), tmp_path, for_real=False)
    sender, spool = make_sender(settings, FakeClock(T0))
    spool_emails(spool, 1, text="日本語 output")
    with caplog.at_level(logging.INFO, logger="tjf_emailer"):
        result = asyncio.run(sender.send_round())
    assert result.logged == 1
    assert not result.server_failed
    assert "send_emails_for_real is off" in caplog.text
    assert "To: tools.tool0@toolforge.org" in caplog.text
    assert "日本語 output 0" in caplog.text
    assert spool.pending() == []
