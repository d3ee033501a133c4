"""The job model: what a tool asks to run, validated as a whole.

A :class:`JobSpec` is the single, canonical description of a job, whatever front end produced
it. Constructing one validates it and reports EVERY problem at once (``InvalidJobError`` with
one :class:`~tjf_core.errors.Problem` per field), so an instance is always a valid job.

Defaults are filled in at construction (the memory and cpu defaults, ``<name>.out`` log files,
``forbid`` concurrency, one replica, ``tcp`` ports), so two spellings of the same job compare
equal and a job read back from Kubernetes equals the one that was sent.

Field names are the API's (REFERENCE §2); ``tjf_core.convert`` maps API JSON and jobs.yaml onto
them. Checks that need the tool (absolute log paths inside its home) live in
:func:`tool_problems`.
"""

from __future__ import annotations

import enum
import re
import zoneinfo
from decimal import Decimal
from pathlib import PurePosixPath
from typing import TypeVar

import attrs

from tjf_core.errors import InvalidJobError, Problem
from tjf_core.quantity import Quantity, parse_quantity
from tjf_core.schedule import schedule_problems

__all__ = [
    "DEFAULT_CPU",
    "DEFAULT_MEMORY",
    "MAX_NAME_LENGTH",
    "MAX_RETRY",
    "Concurrency",
    "Emails",
    "HealthCheck",
    "HealthCheckType",
    "JobKind",
    "JobSpec",
    "Mount",
    "PortProtocol",
    "tool_problems",
]

#: A CronJob's Jobs get an 11-character suffix and Job names may have 63 characters.
MAX_NAME_LENGTH = 52
MAX_RETRY = 5
DEFAULT_MEMORY = Quantity.parse("512Mi")
DEFAULT_CPU = Quantity.parse("500m")

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


class JobKind(enum.Enum):
    ONE_OFF = "one-off"
    SCHEDULED = "scheduled"
    CONTINUOUS = "continuous"


class Emails(enum.Enum):
    NONE = "none"
    ALL = "all"
    ONFINISH = "onfinish"
    ONFAILURE = "onfailure"


class Mount(enum.Enum):
    ALL = "all"
    NONE = "none"


class Concurrency(enum.Enum):
    FORBID = "forbid"
    ALLOW = "allow"
    REPLACE = "replace"


class PortProtocol(enum.Enum):
    TCP = "tcp"
    UDP = "udp"


class HealthCheckType(enum.Enum):
    SCRIPT = "script"
    HTTP = "http"


_E = TypeVar("_E", bound=enum.Enum)


def _member(enum_type: type[_E], field: str, value: object) -> _E:
    """A member from itself or its value (``"continuous"``): Python callers may pass either."""
    if isinstance(value, enum_type):
        return value
    for member in enum_type:
        if member.value == value:
            return member
    choices = ", ".join(str(member.value) for member in enum_type)
    raise InvalidJobError([Problem(field, f"{value!r} is not allowed, use one of {choices}")])


# attrs converters must be named functions for mypy to follow them.
def _to_kind(value: object) -> JobKind:
    return _member(JobKind, "kind", value)


def _to_emails(value: object) -> Emails:
    return _member(Emails, "emails", value)


def _to_mount(value: object) -> Mount:
    return _member(Mount, "mount", value)


def _to_check_type(value: object) -> HealthCheckType:
    return _member(HealthCheckType, "type", value)


def _to_concurrency(value: object) -> Concurrency | None:
    return None if value is None else _member(Concurrency, "concurrency", value)


def _to_protocol(value: object) -> PortProtocol | None:
    return None if value is None else _member(PortProtocol, "port_protocol", value)


def _to_memory(value: Quantity | str | int | Decimal) -> Quantity:
    # Lets Python callers write memory="1Gi"; convert hands over Quantity objects already.
    return value if isinstance(value, Quantity) else parse_quantity(value, field="memory")


def _to_cpu(value: Quantity | str | int | Decimal) -> Quantity:
    return value if isinstance(value, Quantity) else parse_quantity(value, field="cpu")


@attrs.frozen(kw_only=True)
class HealthCheck:
    """How Kubernetes decides a continuous job is healthy: a script, or an HTTP GET."""

    type: HealthCheckType = attrs.field(converter=_to_check_type)
    script: str | None = None
    path: str | None = None

    def problems(self) -> list[Problem]:
        found: list[Problem] = []
        if self.type is HealthCheckType.SCRIPT:
            if not self.script or not self.script.strip():
                found.append(Problem("script", "is required for a script health check"))
            if self.path is not None:
                found.append(Problem("path", "is only allowed for an http health check"))
        else:
            if self.path is None or not self.path.startswith("/"):
                found.append(
                    Problem("path", f"{self.path!r} is not allowed, use a URL path like /healthz")
                )
            if self.script is not None:
                found.append(Problem("script", "is only allowed for a script health check"))
        return found


def _default_kind(spec: JobSpec) -> JobKind:
    return JobKind.ONE_OFF if spec.schedule is None else JobKind.SCHEDULED


def _default_concurrency(spec: JobSpec) -> Concurrency | None:
    return Concurrency.FORBID if spec.kind is JobKind.SCHEDULED else None


def _default_stdout(spec: JobSpec) -> str | None:
    return f"{spec.name}.out" if spec.filelog else None


def _default_stderr(spec: JobSpec) -> str | None:
    return f"{spec.name}.err" if spec.filelog else None


def _default_replicas(spec: JobSpec) -> int | None:
    return 1 if spec.kind is JobKind.CONTINUOUS else None


def _default_protocol(spec: JobSpec) -> PortProtocol | None:
    return PortProtocol.TCP if spec.port is not None else None


@attrs.frozen(kw_only=True)
class JobSpec:
    """One job as the tool defined it. Constructing it validates it (see module docstring)."""

    name: str
    command: str
    image: str
    schedule: str | None = None
    # Declared after `schedule` so its default can look at it.
    kind: JobKind = attrs.field(
        default=attrs.Factory(_default_kind, takes_self=True),
        converter=_to_kind,
    )
    timezone: str | None = None
    concurrency: Concurrency | None = attrs.field(
        default=attrs.Factory(_default_concurrency, takes_self=True),
        converter=_to_concurrency,
    )
    filelog: bool = True
    filelog_stdout: str | None = attrs.field(
        default=attrs.Factory(_default_stdout, takes_self=True)
    )
    filelog_stderr: str | None = attrs.field(
        default=attrs.Factory(_default_stderr, takes_self=True)
    )
    emails: Emails = attrs.field(default=Emails.NONE, converter=_to_emails)
    retry: int = 0
    memory: Quantity = attrs.field(default=DEFAULT_MEMORY, converter=_to_memory)
    cpu: Quantity = attrs.field(default=DEFAULT_CPU, converter=_to_cpu)
    mount: Mount = attrs.field(default=Mount.ALL, converter=_to_mount)
    timeout: int | None = None
    replicas: int | None = attrs.field(default=attrs.Factory(_default_replicas, takes_self=True))
    port: int | None = None
    port_protocol: PortProtocol | None = attrs.field(
        default=attrs.Factory(_default_protocol, takes_self=True),
        converter=_to_protocol,
    )
    health_check: HealthCheck | None = None

    def __attrs_post_init__(self) -> None:
        found = self.problems()
        if found:
            raise InvalidJobError(found)

    @property
    def is_scheduled(self) -> bool:
        return self.kind is JobKind.SCHEDULED

    @property
    def is_continuous(self) -> bool:
        return self.kind is JobKind.CONTINUOUS

    def problems(self) -> list[Problem]:
        """Every problem of this job, each with its field; ``[]`` when valid."""
        return [
            *_identity_problems(self),
            *_kind_problems(self),
            *_filelog_problems(self),
            *_resource_problems(self),
            *_continuous_problems(self),
        ]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _identity_problems(spec: JobSpec) -> list[Problem]:
    found: list[Problem] = []
    name = spec.name
    if not isinstance(name, str) or not name:
        found.append(Problem("name", "is required"))
    elif len(name) > MAX_NAME_LENGTH:
        found.append(
            Problem("name", f"{name!r} has {len(name)} characters, use at most {MAX_NAME_LENGTH}")
        )
    elif not _DNS_SUBDOMAIN.fullmatch(name):
        found.append(
            Problem(
                "name",
                f"{name!r} is not allowed, use lower case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit",
            )
        )
    elif spec.port is not None and not _DNS_1035_LABEL.fullmatch(name):
        found.append(
            Problem(
                "name",
                f"{name!r} cannot name the Service of a job with a port: use lower case "
                "letters, digits and '-', starting with a letter",
            )
        )
    if not isinstance(spec.command, str) or not spec.command.strip():
        found.append(Problem("command", "is required: give the shell command line to run"))
    elif "\0" in spec.command:
        found.append(Problem("command", "must not contain NUL characters"))
    if not isinstance(spec.image, str) or not spec.image.strip():
        found.append(Problem("image", "is required: see `toolforge-jobs images` for the choices"))
    return found


def _only_for(kinds: str, field: str) -> Problem:
    return Problem(field, f"is only allowed for {kinds} jobs")


def _kind_problems(spec: JobSpec) -> list[Problem]:
    found: list[Problem] = []
    scheduled = spec.kind is JobKind.SCHEDULED
    if scheduled and spec.schedule is None:
        found.append(Problem("schedule", "is required for a scheduled job"))
    if not scheduled:
        for field in ("schedule", "timezone", "concurrency"):
            if getattr(spec, field) is not None:
                found.append(_only_for("scheduled", field))
    if spec.schedule is not None:
        found.extend(p.under("schedule") for p in schedule_problems(spec.schedule))
    if spec.timezone is not None and not _valid_timezone(spec.timezone):
        found.append(
            Problem(
                "timezone",
                f"{spec.timezone!r} is not a known time zone, use an IANA name such as "
                "UTC or Europe/Berlin",
            )
        )
    if not _is_int(spec.retry) or not 0 <= spec.retry <= MAX_RETRY:
        found.append(Problem("retry", f"{spec.retry!r} is not allowed, use 0 to {MAX_RETRY}"))
    elif spec.retry and spec.kind is JobKind.CONTINUOUS:
        found.append(_only_for("one-off and scheduled", "retry"))
    if spec.timeout is not None:
        if spec.kind is JobKind.CONTINUOUS:
            found.append(_only_for("one-off and scheduled", "timeout"))
        elif not _is_int(spec.timeout) or spec.timeout < 1:
            found.append(
                Problem("timeout", f"{spec.timeout!r} is not allowed, use a number of seconds >= 1")
            )
    return found


def _valid_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _path_problems(field: str, path: str | None) -> list[Problem]:
    if path is None:
        return []
    if not path or "\0" in path or "\n" in path:
        return [Problem(field, f"{path!r} is not a usable file name")]
    if ".." in path.split("/"):
        return [Problem(field, f"{path!r} is not allowed: '..' could leave the tool's home")]
    return []


def _filelog_problems(spec: JobSpec) -> list[Problem]:
    found: list[Problem] = []
    for field in ("filelog_stdout", "filelog_stderr"):
        path = getattr(spec, field)
        if path is not None and not spec.filelog:
            found.append(Problem(field, "is only allowed when filelog is on"))
        found.extend(_path_problems(field, path))
    return found


def _resource_problems(spec: JobSpec) -> list[Problem]:
    found: list[Problem] = []
    if spec.memory.value <= 0:
        found.append(Problem("memory", f"{spec.memory} is not allowed, use a positive amount"))
    elif spec.memory.value != spec.memory.value.to_integral_value():
        found.append(
            Problem("memory", f"{spec.memory} is not a whole number of bytes, use e.g. 512Mi")
        )
    if spec.cpu.value <= 0:
        found.append(Problem("cpu", f"{spec.cpu} is not allowed, use a positive amount"))
    elif spec.cpu.value < Decimal("0.001"):
        found.append(Problem("cpu", f"{spec.cpu} is below 1m, the smallest cpu amount"))
    return found


def _continuous_problems(spec: JobSpec) -> list[Problem]:
    found: list[Problem] = []
    continuous = spec.kind is JobKind.CONTINUOUS
    if not continuous:
        for field in ("replicas", "port", "health_check"):
            if getattr(spec, field) is not None:
                found.append(_only_for("continuous", field))
    if spec.replicas is not None and (not _is_int(spec.replicas) or spec.replicas < 1):
        found.append(Problem("replicas", f"{spec.replicas!r} is not allowed, use 1 or more"))
    if spec.port is not None and (not _is_int(spec.port) or not 1 <= spec.port <= 65535):
        found.append(Problem("port", f"{spec.port!r} is not allowed, use 1 to 65535"))
    if spec.port_protocol is not None and spec.port is None:
        found.append(Problem("port_protocol", "is only allowed together with port"))
    check = spec.health_check
    if check is not None:
        found.extend(p.under("health_check") for p in check.problems())
        if check.type is HealthCheckType.HTTP and (
            spec.port is None or spec.port_protocol is not PortProtocol.TCP
        ):
            found.append(Problem("health_check", "an http health check needs a tcp port"))
    return found


def tool_problems(spec: JobSpec, *, home: PurePosixPath) -> list[Problem]:
    """Problems that need the tool: absolute log files must be inside its home."""
    found: list[Problem] = []
    for field in ("filelog_stdout", "filelog_stderr"):
        path = getattr(spec, field)
        outside = path is not None and path.startswith("/")
        if outside and not PurePosixPath(path).is_relative_to(home):
            found.append(Problem(field, f"{path!r} is not allowed: it must be inside {home}"))
    return found
