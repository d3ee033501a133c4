"""The sender: drains the spool into the mail server, never faster than allowed.

Each round opens one SMTP connection (plain, STARTTLS or implicit TLS; the server's
certificate is always verified, against the system's CAs or a configured CA file; optional
login), sends at most ``max_per_round`` of the spooled emails that are due, and closes it; the
next round starts ``round_seconds`` later, which is the rate limit of REFERENCE §9
(``task_send_emails_max`` per ``task_send_emails_loop_sleep``). An email leaves the spool only
when the server accepted it.

What a failure means decides what happens next:

* the server cannot be reached, refuses the connection, the TLS handshake or the login, or
  drops the connection: nothing is wrong with the emails; the round ends and the next one waits
  with exponential backoff (``backoff_initial`` doubling up to ``backoff_max``);
* a temporary refusal of one email (4xx): that email waits with its own backoff, others go on;
* a permanent refusal (5xx): the email is moved to the spool's ``dead/`` and logged.

With ``for_real`` off, each email is logged (headers and text) instead of sent, and removed.
Settings are read at the start of every round, so a live change applies to the next one.
Time and sleeping are injected.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses

import aiosmtplib
import attrs

from tjf_emailer.settings import EmailerSettings, SendSettings, SmtpSecurity, SmtpSettings
from tjf_emailer.spool import Spool, SpooledEmail

__all__ = ["RoundResult", "Sender", "tls_context"]

log = logging.getLogger("tjf_emailer.sender")


@attrs.frozen(kw_only=True)
class RoundResult:
    """What one round did."""

    sent: int = 0
    logged: int = 0
    deferred: int = 0
    buried: int = 0
    #: The server could not be used at all (the next round backs off).
    server_failed: bool = False


@attrs.define
class _Retry:
    attempts: int
    not_before: datetime


def tls_context(smtp: SmtpSettings) -> ssl.SSLContext | None:
    """A verifying TLS context (CA file or system CAs); None for a plain connection."""
    if smtp.security is SmtpSecurity.PLAIN:
        return None
    context = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _backoff(send: SendSettings, attempts: int) -> float:
    return float(min(send.backoff_initial * 2 ** min(attempts - 1, 32), send.backoff_max))


def _envelope(data: bytes) -> tuple[str, list[str]]:
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    senders = [address for _, address in getaddresses([str(headers.get("From", ""))])]
    recipients = [
        address for _, address in getaddresses(
            [str(value) for field in ("To", "Cc", "Bcc") for value in headers.get_all(field, [])]
        ) if address
    ]
    return (senders[0] if senders else ""), recipients


def _permanent(error: aiosmtplib.SMTPException) -> bool | None:
    """True: refused for good; False: refused for now; None: the connection itself failed."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(refusal.code >= 500 for refusal in error.recipients)
    if isinstance(error, aiosmtplib.SMTPResponseException) and error.code != 421:
        return error.code >= 500
    return None


class Sender:
    """Sends what the spool holds, in rounds; ``run`` loops until cancelled."""

    def __init__(
        self, *, spool: Spool, settings: Callable[[], EmailerSettings],
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._spool = spool
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._retries: dict[str, _Retry] = {}
        self._server_failures = 0

    async def run(self) -> None:
        """Send rounds forever, waiting between them; cancel the task to stop."""
        while True:
            try:
                result = await self.send_round()
            except Exception:
                # A bug or an unexpected I/O error must not end the sending for good.
                log.exception("sending round failed")
                result = RoundResult(server_failed=True)
            await self._sleep(self.delay_after(result))

    def delay_after(self, result: RoundResult) -> float:
        """How long to wait before the next round: the round time, or the server's backoff."""
        send = self._settings().send
        if not result.server_failed:
            self._server_failures = 0
            return send.round_seconds
        self._server_failures += 1
        return max(send.round_seconds, _backoff(send, self._server_failures))

    async def send_round(self) -> RoundResult:
        """One round: up to ``max_per_round`` due emails, over one connection."""
        settings = self._settings()
        now = self._clock()
        pending = await asyncio.to_thread(self._spool.pending)
        names = {item.name for item in pending}
        self._retries = {n: r for n, r in self._retries.items() if n in names}
        due = [
            item for item in pending
            if item.name not in self._retries or self._retries[item.name].not_before <= now
        ][: settings.send.max_per_round]
        if not due:
            return RoundResult()
        if not settings.send.for_real:
            for item in due:
                await self._log_instead(item)
            return RoundResult(logged=len(due))
        return await self._deliver(due, settings)

    async def _log_instead(self, item: SpooledEmail) -> None:
        data = await asyncio.to_thread(self._spool.read, item)
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
        assert isinstance(message, EmailMessage)
        headers = "".join(f"{k}: {v}\n" for k, v in message.items())
        log.info("not sending (send_emails_for_real is off), the email would be:\n%s\n%s",
                 headers, message.get_content())
        await asyncio.to_thread(self._spool.remove, item)

    async def _connect(self, smtp: SmtpSettings) -> aiosmtplib.SMTP:
        password = None
        if smtp.password_file is not None:
            text = await asyncio.to_thread(smtp.password_file.read_text, "utf-8")
            password = text.strip("\r\n")
        client = aiosmtplib.SMTP(
            hostname=smtp.host, port=smtp.port, timeout=smtp.timeout,
            use_tls=smtp.security is SmtpSecurity.TLS,
            start_tls=smtp.security is SmtpSecurity.STARTTLS,
            validate_certs=True, tls_context=tls_context(smtp),
            username=smtp.username, password=password,
        )
        await client.connect()
        return client

    async def _deliver(self, due: list[SpooledEmail], settings: EmailerSettings) -> RoundResult:
        smtp = settings.smtp
        try:
            client = await self._connect(smtp)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as error:
            log.warning("cannot use the mail server %s:%s: %s", smtp.host, smtp.port, error)
            return RoundResult(server_failed=True)
        sent = deferred = buried = 0
        server_failed = False
        try:
            for item in due:
                outcome = await self._send_one(client, item, settings.send)
                if outcome == "sent":
                    sent += 1
                elif outcome == "buried":
                    buried += 1
                else:
                    deferred += 1
                    if outcome == "connection":
                        server_failed = True
                        break
        except BaseException:
            # Cancelled (a stop) or failed mid-conversation: no polite QUIT, whose answer
            # might never come and would keep the stop waiting; the spool keeps what is unsent.
            client.close()
            raise
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
        return RoundResult(sent=sent, deferred=deferred, buried=buried,
                           server_failed=server_failed)

    async def _send_one(self, client: aiosmtplib.SMTP, item: SpooledEmail,
                        send: SendSettings) -> str:
        try:
            data = await asyncio.to_thread(self._spool.read, item)
        except FileNotFoundError:
            return "sent"  # gone meanwhile (removed by hand): nothing left to do
        sender, recipients = _envelope(data)
        try:
            await client.sendmail(sender, recipients, data)
        except (aiosmtplib.SMTPException, OSError) as error:
            permanent = _permanent(error) if isinstance(error, aiosmtplib.SMTPException) else None
            if permanent:
                target = await asyncio.to_thread(self._spool.bury, item)
                log.error("the mail server refused %s for good (%s): moved to %s",
                          item.name, error, target)
                return "buried"
            retry = self._retries.get(item.name) or _Retry(0, self._clock())
            retry.attempts += 1
            retry.not_before = self._clock() + timedelta(seconds=_backoff(send, retry.attempts))
            self._retries[item.name] = retry
            log.warning("the mail server did not take %s (attempt %d, next after %s): %s",
                        item.name, retry.attempts, retry.not_before.isoformat(), error)
            return "deferred" if permanent is False else "connection"
        await asyncio.to_thread(self._spool.remove, item)
        self._retries.pop(item.name, None)
        log.info("sent %s to %s", item.name, ", ".join(recipients))
        return "sent"
