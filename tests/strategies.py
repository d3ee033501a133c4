"""Hypothesis strategies for valid job specs, shared by the property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tjf_core.model import (
    Concurrency,
    Emails,
    HealthCheck,
    HealthCheckType,
    JobKind,
    JobSpec,
    Mount,
    PortProtocol,
)
from tjf_core.quantity import Quantity

_LABEL = st.from_regex(r"[a-z]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)

job_names = st.one_of(
    _LABEL,
    st.builds(lambda a, b: f"{a}.{b}"[:52].rstrip("-."), _LABEL, _LABEL).filter(
        lambda n: n[-1].isalnum()
    ),
)
tool_names = st.from_regex(r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)

commands = st.one_of(
    st.sampled_from(["./run.sh", "python3 bot.py --once", "echo 'héllo' > out; date", "sleep 5"]),
    st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
        min_size=1,
        max_size=40,
    ).filter(lambda s: s.strip() != ""),
)
images = st.sampled_from(["python3.11", "php8.2", "tf-python311", "bookworm", "node18"])

cron_field_minute = st.one_of(
    st.just("*"), st.integers(0, 59).map(str), st.integers(1, 30).map(lambda n: f"*/{n}")
)
cron_field_hour = st.one_of(
    st.just("*"), st.integers(0, 23).map(str), st.just("1-5"), st.just("0,12")
)
crons = st.one_of(
    st.builds(lambda m, h: f"{m} {h} * * *", cron_field_minute, cron_field_hour),
    st.sampled_from(
        ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually",
         "0 0 * * MON-FRI", "*/15 * 1,15 * *", "30 4 * JAN,JUL 0", "5 */2 * * 7"]
    ),
)
timezones = st.sampled_from([None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])

memories = st.one_of(
    st.integers(1, 8192).map(lambda n: Quantity.parse(f"{n}Mi")),
    st.integers(1, 8).map(lambda n: Quantity.parse(f"{n}Gi")),
    st.integers(100_000_000, 4_000_000_000).map(Quantity.parse),
)
cpus = st.one_of(
    st.integers(1, 4000).map(lambda n: Quantity.parse(f"{n}m")),
    st.sampled_from(["0.25", "0.5", "1", "1.5", "2"]).map(Quantity.parse),
)
log_paths = st.one_of(
    st.none(),
    st.sampled_from(["logs/out.log", "my file.out", "x/$HOME;rm -rf.log", "same.log"]),
)


@st.composite
def job_specs(draw: st.DrawFn, *, kinds: tuple[JobKind, ...] = tuple(JobKind)) -> JobSpec:
    """Any valid JobSpec (every field exercised where the kind allows it)."""
    kind = draw(st.sampled_from(kinds))
    fields: dict[str, Any] = {
        "name": draw(job_names),
        "command": draw(commands),
        "image": draw(images),
        "kind": kind,
        "emails": draw(st.sampled_from(Emails)),
        "memory": draw(memories),
        "cpu": draw(cpus),
        "mount": draw(st.sampled_from(Mount)),
        "filelog": draw(st.booleans()),
    }
    if fields["filelog"]:
        for key in ("filelog_stdout", "filelog_stderr"):
            path = draw(log_paths)
            if path is not None:
                fields[key] = path
    if kind is not JobKind.CONTINUOUS:
        fields["retry"] = draw(st.integers(0, 5))
        fields["timeout"] = draw(st.one_of(st.none(), st.integers(1, 86400)))
    if kind is JobKind.SCHEDULED:
        fields["schedule"] = draw(crons)
        fields["timezone"] = draw(timezones)
        fields["concurrency"] = draw(st.sampled_from(Concurrency))
    if kind is JobKind.CONTINUOUS:
        fields["name"] = draw(_LABEL)
        fields["replicas"] = draw(st.integers(1, 5))
        port = draw(st.one_of(st.none(), st.integers(1, 65535)))
        fields["port"] = port
        protocol = draw(st.sampled_from(PortProtocol))
        if port is not None:
            fields["port_protocol"] = protocol
        checks = [st.none(), st.just(HealthCheck(type=HealthCheckType.SCRIPT, script="test -f ok"))]
        if port is not None and protocol is PortProtocol.TCP:
            checks.append(st.just(HealthCheck(type=HealthCheckType.HTTP, path="/healthz")))
        fields["health_check"] = draw(st.one_of(*checks))
    return JobSpec(**fields)
