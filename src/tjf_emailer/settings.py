"""The emailer's settings: small frozen attrs classes grouped by concern, and their loaders.

In production the settings are a ConfigMap (REFERENCE §9) that is re-read while the emailer
runs, so every source is first a flat mapping of the ConfigMap's keys: a ConfigMap's ``data``
(str -> str), a TOML file (the same keys, TOML types or strings), ``TJF_EMAILER_<KEY>``
environment variables. :func:`load_settings` layers defaults < TOML file < environment, and
:func:`settings_from_mapping` puts a ConfigMap over any base, so a live reload is one call and
one swap of a frozen object.

Every value is parsed here, once: booleans (``yes``/``no``, ``true``/``false``, ``1``/``0``,
``on``/``off``) become ``bool``, seconds become floats or timedeltas, so no ``"yes"`` string
travels further. Every invalid value is reported at once, each problem naming its key (or
environment variable) and value, in an :class:`InvalidSettingsError`. Unknown keys are errors
too: a misspelt key would otherwise be silently ignored.

The keys of :class:`ClusterSettings` (where the Kubernetes objects are, the Lease timing, the
health port) and ``spool_dir`` are read at start only (:data:`START_ONLY_KEYS`): a ConfigMap
change to them is logged and waits for the next start.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import attrs

from tjf_core.errors import ConfigurationError, Problem
from tjf_core.notification_digest import DigestSettings
from tjf_core.notification_mail import MailAddressing

__all__ = [
    "ENV_PREFIX",
    "KEYS",
    "START_ONLY_KEYS",
    "ClusterSettings",
    "EmailerSettings",
    "InvalidSettingsError",
    "LogSettings",
    "SendSettings",
    "SmtpSecurity",
    "SmtpSettings",
    "WatchSettings",
    "load_settings",
    "settings_from_env",
    "settings_from_mapping",
    "settings_from_toml",
]

ENV_PREFIX = "TJF_EMAILER_"


class SmtpSecurity(enum.Enum):
    #: No TLS at all (a relay on a trusted network).
    PLAIN = "plain"
    #: Plain connection upgraded with STARTTLS, which the server must offer.
    STARTTLS = "starttls"
    #: TLS from the first byte (SMTPS, usually port 465).
    TLS = "tls"


@attrs.frozen(kw_only=True)
class SmtpSettings:
    """How to reach the mail server. Its certificate is always verified."""

    host: str = "mail.tools.wmcloud.org"
    port: int = 25
    security: SmtpSecurity = SmtpSecurity.PLAIN
    username: str | None = None
    #: A file holding the password (a mounted Secret), read when connecting: never in a ConfigMap.
    password_file: Path | None = None
    #: CA certificates to trust instead of the system's.
    ca_file: Path | None = None
    timeout: float = 30.0


@attrs.frozen(kw_only=True)
class SendSettings:
    """How the spool is drained."""

    #: False: log each email instead of sending it (``send_emails_for_real`` not ``yes``).
    for_real: bool = False
    #: At most ``max_per_round`` emails are sent every ``round_seconds``.
    round_seconds: float = 10.0
    max_per_round: int = 10
    spool_dir: Path = Path("/var/spool/tjf-emailer")
    #: Retries wait ``backoff_initial`` seconds, doubling up to ``backoff_max``.
    backoff_initial: float = 10.0
    backoff_max: float = 600.0


@attrs.frozen(kw_only=True)
class WatchSettings:
    """For the adapters that watch pods and the ConfigMap."""

    pods_timeout: float = 60.0
    configmap_seconds: float = 10.0


@attrs.frozen(kw_only=True)
class ClusterSettings:
    """Where the emailer's Kubernetes objects are, and how it runs there. Read at start only.

    The emailer's own objects (the ConfigMap re-read live, the leader election Lease) live in
    ``namespace``; an empty one means the pod's own namespace (its service account's).
    """

    #: None: the in-cluster service account.
    kubeconfig: Path | None = None
    #: The namespaces whose pods are watched; empty: all of them.
    watch_namespaces: tuple[str, ...] = ()
    namespace: str = ""
    #: Empty: no ConfigMap is watched.
    configmap_name: str = "tjf-emailer"
    #: Empty: no leader election, this process always sends (one replica only!).
    lease_name: str = "tjf-emailer"
    #: Who this replica is in the Lease; empty: the host name with a random suffix.
    lease_identity: str = ""
    #: client-go's defaults: a standby takes over ``lease_duration`` after the last renewal it
    #: saw; the leader gives up when it could not renew for ``renew_deadline``; every try
    #: waits ``retry_period``.
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    health_address: str = "0.0.0.0"
    #: 0: any free port (tests).
    health_port: int = 8080
    #: /healthz answers 503 when the pod watch made no progress for this long.
    watch_stuck_after: float = 300.0
    #: On SIGTERM, how long to keep sending what is spooled before giving up (it stays spooled).
    shutdown_grace: float = 10.0


@attrs.frozen(kw_only=True)
class LogSettings:
    """How much of a job's log file an email quotes, and where tools keep their files."""

    lines: int = 10
    #: ``{tool}`` is replaced by the tool's name.
    home_template: str = "/data/project/{tool}"


@attrs.frozen(kw_only=True)
class EmailerSettings:
    """All the emailer's settings."""

    addressing: MailAddressing = attrs.field(factory=MailAddressing)
    digest: DigestSettings = attrs.field(factory=DigestSettings)
    smtp: SmtpSettings = attrs.field(factory=SmtpSettings)
    send: SendSettings = attrs.field(factory=SendSettings)
    watch: WatchSettings = attrs.field(factory=WatchSettings)
    logs: LogSettings = attrs.field(factory=LogSettings)
    cluster: ClusterSettings = attrs.field(factory=ClusterSettings)
    debug: bool = False


class InvalidSettingsError(ConfigurationError):
    """Settings that cannot be used; ``problems`` names each bad key and value."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid emailer settings: " + "; ".join(map(str, self.problems)))


# --- parsing one value ---------------------------------------------------------------------------

_TRUE = frozenset({"yes", "true", "1", "on"})
_FALSE = frozenset({"no", "false", "0", "off"})


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("is not a boolean, use yes or no")


def _number(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("is not a number")
    try:
        number = float(value) if isinstance(value, int | float) else float(str(value).strip())
    except ValueError:
        raise ValueError("is not a number of seconds") from None
    if not number >= 0 or number == float("inf"):
        raise ValueError("is out of range, use a finite number of seconds, 0 or more")
    return number


def _positive(value: object) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError("is out of range, use a number of seconds above 0")
    return number


def _integer(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool | float):
            raise ValueError("is not a whole number")
        try:
            number = value if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            raise ValueError("is not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"is out of range, use {low} to {high}")
        return number

    return parse


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("is not text")
    text = value.strip()
    if any(c in text for c in "\r\n"):
        raise ValueError("has a line break")
    return text


def _address(value: object) -> str:
    text = _text(value)
    local, at, domain = parseaddr(text)[1].rpartition("@")
    if not at or not local or not domain or " " in domain:
        raise ValueError("is not an email address, use name@domain or Name <name@domain>")
    return text


def _domain(value: object) -> str:
    text = _text(value)
    if not text or "@" in text or " " in text:
        raise ValueError("is not a domain name, use e.g. toolforge.org")
    return text


def _host(value: object) -> str:
    text = _text(value)
    if not text or " " in text:
        raise ValueError("is not a host name")
    return text


def _optional_text(value: object) -> str | None:
    return _text(value) or None


def _optional_path(value: object) -> Path | None:
    text = _text(value)
    return Path(text) if text else None


def _path(value: object) -> Path:
    text = _text(value)
    if not text:
        raise ValueError("is empty, use a directory path")
    return Path(text)


def _security(value: object) -> SmtpSecurity:
    text = _text(value).lower()
    for member in SmtpSecurity:
        if member.value == text:
            return member
    raise ValueError("is not allowed, use " + ", ".join(m.value for m in SmtpSecurity))


def _template(value: object) -> str:
    text = _text(value)
    try:
        filled = text.format(tool="x")
    except (KeyError, IndexError, ValueError):
        raise ValueError("cannot be filled, use {tool} as the only placeholder") from None
    if "{tool}" not in text or not filled.startswith("/"):
        raise ValueError("must be an absolute path holding {tool}")
    return text


def _seconds(value: object) -> timedelta:
    return timedelta(seconds=_number(value))


def _dns_label(value: object) -> str:
    text = _text(value)
    if not _DNS_LABEL.fullmatch(text):
        raise ValueError("is not a Kubernetes name, use lower case letters, digits and '-'")
    return text


def _optional_dns_label(value: object) -> str:
    return _dns_label(value) if _text(value) else ""


def _namespaces(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else _text(value).split(",")
    names = tuple(_dns_label(item) for item in items if not isinstance(item, str) or item.strip())
    if len(set(names)) != len(names):
        raise ValueError("names a namespace twice")
    return names


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


# key -> (group attribute or "" for the top level, field name, parser)
KEYS: dict[str, tuple[str, str, Callable[[object], Any]]] = {
    "email_from_addr": ("addressing", "from_addr", _address),
    "email_to_domain": ("addressing", "to_domain", _domain),
    "email_to_prefix": ("addressing", "to_prefix", _text),
    "send_emails_for_real": ("send", "for_real", _bool),
    "smtp_server_fqdn": ("smtp", "host", _host),
    "smtp_server_port": ("smtp", "port", _integer(1, 65535)),
    "smtp_tls": ("smtp", "security", _security),
    "smtp_username": ("smtp", "username", _optional_text),
    "smtp_password_file": ("smtp", "password_file", _optional_path),
    "smtp_ca_file": ("smtp", "ca_file", _optional_path),
    "smtp_timeout": ("smtp", "timeout", _positive),
    "task_compose_emails_loop_sleep": ("digest", "group_interval", _seconds),
    "group_wait": ("digest", "group_wait", _seconds),
    "max_lines_per_email": ("digest", "max_entries", _integer(1, 10_000)),
    "task_send_emails_loop_sleep": ("send", "round_seconds", _positive),
    "task_send_emails_max": ("send", "max_per_round", _integer(1, 100_000)),
    "spool_dir": ("send", "spool_dir", _path),
    "send_backoff_initial": ("send", "backoff_initial", _positive),
    "send_backoff_max": ("send", "backoff_max", _positive),
    "task_read_configmap_sleep": ("watch", "configmap_seconds", _positive),
    "task_watch_pods_timeout": ("watch", "pods_timeout", _positive),
    "log_lines": ("logs", "lines", _integer(0, 1000)),
    "home_template": ("logs", "home_template", _template),
    "debug": ("", "debug", _bool),
    "kubeconfig": ("cluster", "kubeconfig", _optional_path),
    "watch_namespaces": ("cluster", "watch_namespaces", _namespaces),
    "namespace": ("cluster", "namespace", _optional_dns_label),
    "configmap_name": ("cluster", "configmap_name", _optional_dns_label),
    "lease_name": ("cluster", "lease_name", _optional_dns_label),
    "lease_identity": ("cluster", "lease_identity", _text),
    "lease_duration": ("cluster", "lease_duration", _positive),
    "lease_renew_deadline": ("cluster", "renew_deadline", _positive),
    "lease_retry_period": ("cluster", "retry_period", _positive),
    "health_address": ("cluster", "health_address", _host),
    "health_port": ("cluster", "health_port", _integer(0, 65535)),
    "watch_stuck_after": ("cluster", "watch_stuck_after", _positive),
    "shutdown_grace": ("cluster", "shutdown_grace", _number),
}

#: Keys read when the emailer starts; a live ConfigMap change to them waits for a restart.
START_ONLY_KEYS = frozenset(
    {"spool_dir", *(key for key, (group, _, _) in KEYS.items() if group == "cluster")}
)


# --- sources -------------------------------------------------------------------------------------


def _apply(
    base: EmailerSettings, values: Mapping[str, object], *, name_of: Callable[[str], str]
) -> EmailerSettings:
    problems: list[Problem] = []
    changes: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        spec = KEYS.get(key)
        if spec is None:
            known = ", ".join(KEYS)
            problems.append(Problem(name_of(key), f"is not a setting, use one of {known}"))
            continue
        group, field, parse = spec
        try:
            changes.setdefault(group, {})[field] = parse(value)
        except ValueError as error:
            problems.append(Problem(name_of(key), f"{value!r} {error}"))
    top = changes.pop("", {})
    settings = base
    if not problems:
        try:
            updated = {g: attrs.evolve(getattr(base, g), **f) for g, f in changes.items()}
            settings = attrs.evolve(base, **updated, **top)
        except ValueError as error:
            problems.append(Problem("", str(error)))
    problems.extend(_consistency_problems(settings, name_of=name_of))
    if problems:
        raise InvalidSettingsError(problems)
    return settings


def _consistency_problems(
    settings: EmailerSettings, *, name_of: Callable[[str], str]
) -> list[Problem]:
    found = []
    smtp = settings.smtp
    if smtp.username is not None and smtp.security is SmtpSecurity.PLAIN:
        found.append(Problem(name_of("smtp_username"), (
            f"{smtp.username!r} would send a password without TLS, set smtp_tls to "
            "starttls or tls")))
    if (smtp.username is None) != (smtp.password_file is None):
        found.append(Problem(name_of("smtp_password_file"),
                             "smtp_username and smtp_password_file go together, set both or none"))
    cluster = settings.cluster
    # As client-go: a leader must give up before a standby may take over, and retry in time.
    if not cluster.lease_duration > cluster.renew_deadline > cluster.retry_period:
        found.append(Problem(name_of("lease_renew_deadline"), (
            f"{cluster.renew_deadline} must be below lease_duration ({cluster.lease_duration}) "
            f"and above lease_retry_period ({cluster.retry_period})")))
    if settings.send.backoff_initial > settings.send.backoff_max:
        found.append(Problem(name_of("send_backoff_initial"), (
            f"{settings.send.backoff_initial} is more than send_backoff_max "
            f"({settings.send.backoff_max}), use at most that")))
    return found


def settings_from_mapping(
    data: Mapping[str, str], *, base: EmailerSettings | None = None
) -> EmailerSettings:
    """Settings from a ConfigMap's ``data`` put over ``base`` (default: the defaults)."""
    return _apply(base or EmailerSettings(), data, name_of=lambda key: key)


def settings_from_toml(path: Path, *, base: EmailerSettings | None = None) -> EmailerSettings:
    """Settings from a TOML file of the same keys, at the top or in an ``[emailer]`` table."""
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"settings file {path} cannot be read: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"settings file {path} is not valid TOML: {error}") from error
    table = document.get("emailer", document)
    if not isinstance(table, dict):
        raise ConfigurationError(f"settings file {path}: [emailer] must be a table")
    return _apply(base or EmailerSettings(), table, name_of=lambda key: f"{path}: {key}")


def settings_from_env(
    environ: Mapping[str, str], *, base: EmailerSettings | None = None
) -> EmailerSettings:
    """Settings from ``TJF_EMAILER_<KEY>`` variables (``TJF_EMAILER_SMTP_SERVER_FQDN``)."""
    values = {
        name[len(ENV_PREFIX):].lower(): value
        for name, value in environ.items() if name.startswith(ENV_PREFIX)
    }
    values.pop("config", None)  # TJF_EMAILER_CONFIG names the file, it is no setting
    return _apply(base or EmailerSettings(), values, name_of=lambda key: ENV_PREFIX + key.upper())


def load_settings(
    *, path: Path | None = None, environ: Mapping[str, str] | None = None
) -> EmailerSettings:
    """Defaults, then the TOML file (``path``, else ``$TJF_EMAILER_CONFIG``), then ``environ``."""
    environ = environ or {}
    settings = EmailerSettings()
    file = path or (Path(environ[ENV_PREFIX + "CONFIG"]) if environ.get(ENV_PREFIX + "CONFIG")
                    else None)
    if file is not None:
        settings = settings_from_toml(file, base=settings)
    return settings_from_env(environ, base=settings)
