"""The email a tool's maintainers get about its jobs: one digest, written for people.

:func:`compose_digest` turns a :class:`~tjf_core.notification_digest.Digest` into a UTF-8
:class:`email.message.EmailMessage` (and :func:`compose_email` into a :class:`ComposedEmail`,
which also gives the bytes to send, fast), pure and deterministic: the time and the lines of
log output are parameters (reading log files is the emailer's I/O), so the same digest at the
same time gives the same bytes, Message-ID included.

Decisions:

* Threading: every job has a fixed thread id, ``<tjf.<tool>.<job>@<domain>>``; each email names
  the ids of its jobs in ``In-Reply-To`` and ``References``, so mail clients show one thread
  per job (a digest about several jobs joins their threads). The Message-ID is derived from
  the tool, the time and a hash of the digest's events: unique per email, and the same when
  the same digest is composed again for the same time, so a spool can use it as a name.
* Every line of log output is cleaned of control characters (a job's output may hold terminal
  escapes) and shortened; text of any language goes through unharmed.
* Every termination prints its exit code, 0 included; a crash loop prints how many restarts.
* The email says why it was sent (the job's emails setting) and how to stop it.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr

import attrs

from tjf_core.model import JobKind
from tjf_core.notification_digest import Digest, DigestEntry
from tjf_core.notifications import ContainerState, JobEvent

__all__ = [
    "ComposedEmail",
    "MailAddressing",
    "compose_digest",
    "compose_email",
    "describe_entry",
    "recipient",
    "thread_id",
]

# Read in the hot path: EnumType.__getattr__ and Enum.value are slow.
_RUNNING, _WAITING = ContainerState.RUNNING, ContainerState.WAITING
_STATE_TEXT = {member: member.value for member in ContainerState}
_MAX_LINE = 300
#: RFC 5322's recommended line length, beyond which the email package folds a header.
_MAX_LINE_LENGTH = 78
_MAX_MESSAGE = 500
_KIND_NAMES = {
    JobKind.ONE_OFF: "one-off job",
    JobKind.SCHEDULED: "scheduled job",
    JobKind.CONTINUOUS: "continuous job",
}
_REASONS = {
    "OOMKilled": "it ran out of memory and was killed (OOMKilled); ask for more with --mem",
    "DeadlineExceeded": "it ran longer than its timeout and was stopped (DeadlineExceeded)",
    "Evicted": "Kubernetes evicted it from its node (Evicted)",
}
# Control characters other than tab; a job's output must not drive the reader's terminal.
_CONTROLS = dict.fromkeys([*range(0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0)],
                          "\N{REPLACEMENT CHARACTER}")


@attrs.frozen(kw_only=True)
class MailAddressing:
    """Who sends, and how a tool's maintainers are addressed (``<prefix>.<tool>@<domain>``)."""

    #: An address, with or without a name: ``Toolforge <noreply@toolforge.org>``.
    from_addr: str = "noreply@toolforge.org"
    to_prefix: str = "tools"
    to_domain: str = "toolforge.org"

    @property
    def id_domain(self) -> str:
        """The domain of Message-IDs: the sender's."""
        return _domain_of(self.from_addr) or self.to_domain


@functools.lru_cache(maxsize=64)
def _domain_of(address: str) -> str:
    # Parsing an address costs more than composing a digest line; there is one sender.
    return parseaddr(address)[1].rpartition("@")[2]


def recipient(tool: str, *, addressing: MailAddressing) -> str:
    """The address of a tool's maintainers; an empty prefix gives ``<tool>@<domain>``."""
    local = f"{addressing.to_prefix}.{tool}" if addressing.to_prefix else tool
    return f"{local}@{addressing.to_domain}"


def thread_id(tool: str, job: str, *, addressing: MailAddressing) -> str:
    """The fixed id that every email about one job refers to, so they form one thread."""
    return f"<tjf.{tool}.{job}@{addressing.id_domain}>"


def _clean(text: str, limit: int) -> str:
    text = text.translate(_CONTROLS)
    return text if len(text) <= limit else text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


# Times are spelt out with %-formatting (hence the noqa: UP031): strftime costs a third of
# a digest line, and f-strings' format specs half again as much as %d. Where they replace
# strftime they write the year as its %Y does (not padded); tests hold them equal.


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "at an unknown time"
    m = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d UTC" % (  # noqa: UP031
        m.year, m.month, m.day, m.hour, m.minute, m.second)


def _since(moment: datetime | None, now: datetime) -> str:
    """``" since " + moment.strftime("%H:%M UTC")``, the date first on another day."""
    if moment is None:
        return ""
    m = moment.astimezone(UTC)
    if m.date() == now.astimezone(UTC).date():
        return " since %02d:%02d UTC" % (m.hour, m.minute)  # noqa: UP031
    return " since %d-%02d-%02d %02d:%02d UTC" % (  # noqa: UP031
        m.year, m.month, m.day, m.hour, m.minute)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date_header(utc: datetime) -> str:
    """``email.utils.format_datetime(utc, usegmt=True)``."""
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (  # noqa: UP031
        _DAYS[utc.weekday()], utc.day, _MONTHS[utc.month - 1], utc.year,
        utc.hour, utc.minute, utc.second)


def _id_stamp(utc: datetime) -> str:
    """``utc.strftime("%Y%m%d%H%M%S%f")``."""
    return "%d%02d%02d%02d%02d%02d%06d" % (  # noqa: UP031
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)


@functools.lru_cache(maxsize=16)
def _stamps(now: datetime) -> tuple[str, str]:
    """The Date header and the Message-ID's time of an email composed at ``now`` (the due
    digests of a round are all composed at one time)."""
    utc = now.astimezone(UTC)
    return _date_header(utc), _id_stamp(utc)


def _exit(event: JobEvent) -> str:
    code = "unknown" if event.exit_code is None else str(event.exit_code)
    reason = f" ({event.reason})" if event.reason else ""
    return f"exit code {code}{reason}"


def describe_entry(entry: DigestEntry, *, now: datetime) -> str:
    """What happened, in one line: the state, the exit code, restarts and when."""
    event = entry.event
    source = event.source
    if event.state is _RUNNING:
        text = "started running"
    elif event.state is _WAITING:
        text = f"is waiting: {event.reason or 'no reason given'}"
    else:
        killed = _REASONS.get(event.reason or "") or _REASONS.get(source.reason or "")
        if event.exit_code == 0:
            text = f"finished successfully, {_exit(event)}"
        else:
            text = f"failed, {_exit(event)}" + (f": {killed}" if killed else "")
        restarts = source.restart_count
        if event.previous and restarts:
            times = "1 time" if restarts == 1 else f"{restarts} times"
            since = _since(source.started_at, now)
            if entry.repeated:
                text = f"keeps crashing: restarted {times}{since}; last {text}"
            else:
                text += f"; restarted {times}{since}"
    when = event.finished_at or event.started_at or entry.seen_at
    return f"{_when(when)}: {text} (pod {source.name})"


def _job_section(
    job: str, entries: Sequence[DigestEntry], *, now: datetime, logs: Sequence[str] | None
) -> list[str]:
    first = entries[0].event
    kind = _KIND_NAMES.get(first.kind, "job") if first.kind is not None else "job"
    lines = [f'Job "{job}" ({kind}, emails={first.emails.value}):']
    for entry in entries:
        lines.append("  - " + describe_entry(entry, now=now))
        if entry.event.message:
            lines.append("    message: " + _clean(entry.event.message, _MAX_MESSAGE))
    if logs:
        files = ", ".join(first.log_files) or "its log file"
        lines.append(f"  The last {len(logs)} lines of its output ({files}):")
        lines.extend("    | " + _clean(line, _MAX_LINE) for line in logs)
    return lines


def _body(
    digest: Digest, by_job: Mapping[str, Sequence[DigestEntry]], *, now: datetime,
    logs: Mapping[str, Sequence[str]],
) -> str:
    lines = [
        "Hello,",
        "",
        f'this is Toolforge with news about the jobs of the tool "{digest.tool}".',
        "",
    ]
    for job, entries in by_job.items():
        lines.extend(_job_section(job, entries, now=now, logs=logs.get(job)))
        lines.append("")
    if digest.omitted:
        more = "1 more event" if digest.omitted == 1 else f"{digest.omitted} more events"
        lines += [f"... and {more}, left out to keep this email short.", ""]
    some = next(iter(by_job), "JOB")
    lines += [
        "-- ",
        f'You get this email because you maintain the tool "{digest.tool}" and the jobs above',
        "were created asking for emails (--emails all, onfinish or onfailure).",
        "To stop them, re-create a job with --emails none:",
        f"  toolforge-jobs delete {some}",
        f"  toolforge-jobs run {some} --command ... --image ... --emails none",
        'or set "emails: none" for it in your jobs file and run: toolforge-jobs load FILE',
    ]
    return "\n".join(lines) + "\n"


@attrs.frozen
class ComposedEmail:
    """A composed email: its headers and text, as an EmailMessage or as the bytes to send."""

    #: (name, value) in order; a tuple value is a list of ids, folded one a line.
    headers: tuple[tuple[str, str | tuple[str, ...]], ...]
    text: str

    @property
    def message_id(self) -> str:
        return next(str(v) for name, v in self.headers if name == "Message-ID")

    def _payload(self) -> str:
        # Encoded here, not by set_content: the email package's header machinery would cost
        # more than composing the whole email (and its bytes are the same, a test checks).
        return binascii.b2a_qp(self.text.encode("utf-8"), istext=True).decode("ascii")

    def _folded(self) -> tuple[list[tuple[str, str]], str] | None:
        """The headers, lists folded one id a line, and their text (lines joined by LF), when
        the email package would write them all out unchanged (ASCII, no line longer than 78);
        None when one needs its encoding.
        """
        folded = []
        breaks = -1  # the line breaks the text below has when no value holds one of its own
        for name, value in self.headers:
            if isinstance(value, str):
                breaks += 1
            else:
                breaks += len(value)
                value = "\n ".join(value)
            folded.append((name, value))
        text = "\n".join([f"{name}: {value}" for name, value in folded])
        if (text.count("\n") != breaks or not text.isascii() or "\r" in text
                or max(map(len, text.split("\n"))) > _MAX_LINE_LENGTH):
            return None
        return folded, text

    def message(self) -> EmailMessage:
        """The email as an :class:`~email.message.EmailMessage` (default policy)."""
        message = EmailMessage()
        plain = self._folded()
        if plain is not None:
            for name, text in plain[0]:
                message.set_raw(name, text)
        else:
            for name, value in self.headers:
                message[name] = value if isinstance(value, str) else " ".join(value)
        message.set_payload(self._payload())
        return message

    def smtp_bytes(self) -> bytes:
        """``self.message().as_bytes(policy=email.policy.SMTP)``, without the email package.

        Its generator parses the Content-Type header three times per message, which costs
        more than composing the email; the headers of a digest are plain ASCII (tool and job
        names are label values), so they are written out directly. Other headers (a non-ASCII
        sender name, a very long tool name) go through the email package.
        """
        plain = self._folded()
        if plain is None or "\r" in self.text:
            # A carriage return alone is a line break to the email package's generator.
            return self.message().as_bytes(policy=SMTP)
        # The text's only line breaks are between headers and in folds: all become CRLF.
        head = plain[1].replace("\n", "\r\n")
        body = self._payload().replace("\n", "\r\n")
        return (head + "\r\n\r\n" + body).encode("ascii")


def compose_email(
    digest: Digest, *, addressing: MailAddressing, now: datetime,
    logs: Mapping[str, Sequence[str]] | None = None,
) -> ComposedEmail:
    """The email for one digest; ``logs`` maps a job to the last lines of its output."""
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    by_job: dict[str, list[DigestEntry]] = {}
    said = []
    for entry in digest.entries:
        event, source = entry.event, entry.event.source
        by_job.setdefault(source.job, []).append(entry)
        said.append(f"{source.job}|{source.name}|{_STATE_TEXT[event.state]}|{event.exit_code}|"
                    f"{source.restart_count}|{entry.repeated}")
    jobs = tuple(by_job)  # digest.jobs
    about = f"job {jobs[0]}" if len(jobs) == 1 else f"{len(jobs)} jobs"
    text = _body(digest, by_job, now=now, logs=logs or {})
    # From what the digest says, not the text: quoting a log that grew meanwhile must not
    # make a re-composed email (after an interrupted spooling) look like another one.
    said_text = "\n".join(said) + f"\n{digest.omitted}"
    content = hashlib.sha256(said_text.encode("utf-8")).hexdigest()[:12]
    date, stamp = _stamps(now)
    domain = addressing.id_domain
    threads = tuple(f"<tjf.{digest.tool}.{job}@{domain}>" for job in jobs)
    headers: list[tuple[str, str | tuple[str, ...]]] = [
        ("From", addressing.from_addr),
        ("To", recipient(digest.tool, addressing=addressing)),
        ("Subject", f"[Toolforge] [{digest.tool}] notification about {about}"),
        ("Date", date),
        ("Message-ID", f"<tjf.{digest.tool}.{stamp}.{content}@{domain}>"),
    ]
    if threads:
        headers += [("In-Reply-To", threads), ("References", threads)]
    headers += [
        # RFC 3834: an automatic message, which vacation responders must not answer.
        ("Auto-Submitted", "auto-generated"),
        ("X-Toolforge-Tool", digest.tool),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
        ("Content-Transfer-Encoding", "quoted-printable"),
    ]
    return ComposedEmail(headers=tuple(headers), text=text)


def compose_digest(
    digest: Digest, *, addressing: MailAddressing, now: datetime,
    logs: Mapping[str, Sequence[str]] | None = None,
) -> EmailMessage:
    """The email for one digest as an EmailMessage (see :func:`compose_email`)."""
    return compose_email(digest, addressing=addressing, now=now, logs=logs).message()
