"""Readback: the job a live Kubernetes object runs, and whether that object is current.

The cluster is the only store of jobs, so listing, showing and ``load`` all start from live
objects. Objects rendered here carry the spec as canonical JSON (``jobs.toolforge.org/spec``)
and read back exactly. Objects made by the ORIGINAL Toolforge system lack it: they are parsed
best-effort from what that system wrote (labels, the ``sh -c`` line with its unquoted
``exec 1>>OUT;exec 2>>ERR;`` prefix, resource limits, probes), so tools keep their jobs across
the switch. Either way the result is a validated :class:`~tjf_core.model.JobSpec`.

``is_up_to_date`` re-renders the stored spec and checks that every field we render has the same
value in the live object. The live object also holds server-set fields and defaults, so the
test is "rendered is a subset of live", with quantities compared by value (the API server
rewrites ``0.5`` as ``500m``).
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from tjf_core.convert import job_from_api, spec_from_json
from tjf_core.errors import InvalidInputError, InvalidJobError, InvalidQuantityError, Problem
from tjf_core.images import ImageCatalog
from tjf_core.model import MAX_RETRY, JobKind, JobSpec
from tjf_core.quantity import Quantity
from tjf_core.render import (
    CRON_ANNOTATION,
    EMAILS_LABEL,
    MOUNT_LABEL,
    NAME_LABEL,
    SHELL,
    SPEC_ANNOTATION,
    ToolContext,
    render_job,
)
from tjf_core.settings import RenderSettings

__all__ = ["is_up_to_date", "job_name_of", "read_spec", "split_log_redirects"]

_KINDS = {"Job": JobKind.ONE_OFF, "CronJob": JobKind.SCHEDULED, "Deployment": JobKind.CONTINUOUS}
_OUT_PREFIX = "exec 1>>"
_ERR_PREFIX = ";exec 2>>"


def job_name_of(obj: Mapping[str, Any]) -> str | None:
    """The job an object belongs to: its ``app.kubernetes.io/name`` label, else its name."""
    metadata = _mapping(obj.get("metadata"))
    name = _mapping(metadata.get("labels")).get(NAME_LABEL) or metadata.get("name")
    return name if isinstance(name, str) and name else None


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = _mapping(obj.get("metadata"))
    kind = obj.get("kind") or "object"
    where = "/".join(str(p) for p in (metadata.get("namespace"), metadata.get("name")) if p)
    return f"{kind} {where}" if where else str(kind)


def read_spec(
    obj: Mapping[str, Any], *, home: PurePosixPath, catalog: ImageCatalog | None = None
) -> JobSpec:
    """The job that ``obj`` (a Job, CronJob or Deployment as a camelCase dict) runs.

    Exact for objects rendered by :func:`~tjf_core.render.render_job`; best-effort for the
    original system's objects, whose image URL becomes a short name through ``catalog`` and
    whose log files under ``home`` become relative paths. Raises InvalidJobError naming the
    object when it cannot be read as a job.
    """
    annotations = _mapping(_mapping(obj.get("metadata")).get("annotations"))
    text = annotations.get(SPEC_ANNOTATION)
    try:
        if text is not None:
            if not isinstance(text, str):
                raise InvalidJobError([Problem("", f"annotation {SPEC_ANNOTATION} is not text")])
            return _spec_of_annotation(text)
        return job_from_api(_legacy_fields(obj, home=home, catalog=catalog))
    except InvalidInputError as error:
        raise InvalidJobError(
            error.problems, summary=f"cannot read the job of {_describe(obj)}"
        ) from None


@functools.lru_cache(maxsize=8192)
def _spec_of_annotation(text: str) -> JobSpec:
    # Memoized: listing reads every job's annotation again on each call (status polling), and
    # the text fully decides the (immutable) spec. Failures raise and are not remembered.
    # 8192 specs (about 1 kB each) cover the jobs of every tool of a Toolforge-sized cluster.
    return spec_from_json(text)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _kind_of(obj: Mapping[str, Any]) -> JobKind:
    kind = obj.get("kind")
    if kind in _KINDS:
        return _KINDS[kind]
    spec = _mapping(obj.get("spec"))
    # Items of a list response carry no kind; the spec's shape tells them apart.
    if kind is None and "jobTemplate" in spec:
        return JobKind.SCHEDULED
    if kind is None and ("strategy" in spec or "replicas" in spec):
        return JobKind.CONTINUOUS
    if kind is None and "template" in spec:
        return JobKind.ONE_OFF
    raise InvalidJobError(
        [Problem("kind", f"{kind!r} is not a job object: expected a Job, CronJob or Deployment")]
    )


def _legacy_fields(
    obj: Mapping[str, Any], *, home: PurePosixPath, catalog: ImageCatalog | None
) -> dict[str, Any]:
    """The API JSON of an object made without the spec annotation (see module docstring)."""
    kind = _kind_of(obj)
    metadata = _mapping(obj.get("metadata"))
    labels = _mapping(metadata.get("labels"))
    spec = _mapping(obj.get("spec"))
    job = _mapping(_mapping(spec.get("jobTemplate")).get("spec")) if kind is JobKind.SCHEDULED \
        else spec
    pod = _mapping(_mapping(job.get("template")).get("spec"))
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise InvalidJobError([Problem("", "has no container to read the job from")])
    container: dict[str, Any] = containers[0]
    fields: dict[str, Any] = {
        "name": job_name_of(obj),
        "kind": kind.value,
        "image": _image_name(container.get("image"), catalog),
        "emails": labels.get(EMAILS_LABEL),
        "mount": labels.get(MOUNT_LABEL),
    }
    fields.update(_command_fields(container, home=home))
    limits = _mapping(_mapping(container.get("resources")).get("limits"))
    fields["memory"] = limits.get("memory")
    fields["cpu"] = limits.get("cpu")
    if kind is not JobKind.CONTINUOUS:
        retry = job.get("backoffLimit")
        # Left unset, Kubernetes retries 6 times; 5 is the nearest a job may ask for.
        fields["retry"] = min(retry, MAX_RETRY) if isinstance(retry, int) else retry
        fields["timeout"] = job.get("activeDeadlineSeconds")
    if kind is JobKind.SCHEDULED:
        annotations = _mapping(metadata.get("annotations"))
        fields["schedule"] = annotations.get(CRON_ANNOTATION) or spec.get("schedule")
        fields["timezone"] = spec.get("timeZone")
        policy = spec.get("concurrencyPolicy")
        fields["concurrency"] = policy.lower() if isinstance(policy, str) else policy
    if kind is JobKind.CONTINUOUS:
        fields["replicas"] = spec.get("replicas")
        fields.update(_port_fields(container))
    return fields


def _image_name(url: object, catalog: ImageCatalog | None) -> object:
    if isinstance(url, str) and catalog is not None:
        image = catalog.find_by_url(url)
        if image is not None:
            return image.shortname
    return url


def _shell_line(command: object) -> str | None:
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        return None
    parts: list[str] = command
    if len(parts) == 4 and tuple(parts[:3]) == SHELL:
        return parts[3]
    if len(parts) == 3 and tuple(parts[:2]) == SHELL[:2]:
        return parts[2]
    return shlex.join(parts) if parts else None


def _command_fields(container: dict[str, Any], *, home: PurePosixPath) -> dict[str, Any]:
    line = _shell_line(container.get("command"))
    if line is None:
        raise InvalidJobError([Problem("command", "has no command line to read")])
    redirects = split_log_redirects(line)
    if redirects is None:
        return {"command": line, "filelog": False}
    out, err, command = redirects
    return {
        "command": command,
        "filelog": True,
        "filelog_stdout": _relative_to(out, home),
        "filelog_stderr": _relative_to(err, home),
    }


def _relative_to(path: str, home: PurePosixPath) -> str:
    absolute = PurePosixPath(path)
    if absolute.is_absolute() and absolute.is_relative_to(home) and absolute != home:
        return str(absolute.relative_to(home))
    return path


def split_log_redirects(line: str) -> tuple[str, str, str] | None:
    """(stdout file, stderr file, command) of ``exec 1>>OUT;exec 2>>ERR;CMD``; else None.

    The file names may be shell-quoted (as tjf writes them) or bare (as the original system
    did); either way they come back unquoted.
    """
    if not line.startswith(_OUT_PREFIX):
        return None
    word = _shell_word(line, len(_OUT_PREFIX))
    if word is None or not line.startswith(_ERR_PREFIX, word[1]):
        return None
    out, pos = word
    word = _shell_word(line, pos + len(_ERR_PREFIX))
    if word is None or not line.startswith(";", word[1]):
        return None
    err, pos = word
    return out, err, line[pos + 1 :]


def _shell_word(line: str, pos: int) -> tuple[str, int] | None:
    """The shell word starting at ``pos``, unquoted, and the position after it.

    Enough of sh's quoting for file names: bare characters, backslash escapes and single or
    double quoted parts. None when there is no word or a quote is not closed.
    """
    chars: list[str] = []
    start, end = pos, len(line)
    while pos < end:
        char = line[pos]
        if char in "; \t\n|&<>()":
            break
        if char == "\\" and pos + 1 < end:
            chars.append(line[pos + 1])
            pos += 2
        elif char == "'":
            close = line.find("'", pos + 1)
            if close < 0:
                return None
            chars.append(line[pos + 1 : close])
            pos = close + 1
        elif char == '"':
            pos += 1
            while pos < end and line[pos] != '"':
                if line[pos] == "\\" and pos + 1 < end and line[pos + 1] in '"\\$`':
                    pos += 1
                chars.append(line[pos])
                pos += 1
            if pos >= end:
                return None
            pos += 1
        else:
            chars.append(char)
            pos += 1
    if pos == start:
        return None
    return "".join(chars), pos


def _port_fields(container: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    ports = container.get("ports")
    if isinstance(ports, list) and ports and isinstance(ports[0], dict):
        fields["port"] = ports[0].get("containerPort")
        protocol = ports[0].get("protocol")
        fields["port_protocol"] = protocol.lower() if isinstance(protocol, str) else protocol
    else:
        for variable in container.get("env") or ():
            if isinstance(variable, dict) and variable.get("name") == "PORT":
                fields["port"] = variable.get("value")
    probe = _mapping(container.get("startupProbe") or container.get("livenessProbe"))
    command = _mapping(probe.get("exec")).get("command")
    if command is not None:
        fields["health_check"] = {"type": "script", "script": _shell_line(command)}
    elif "httpGet" in probe:
        fields["health_check"] = {"type": "http", "path": _mapping(probe["httpGet"]).get("path")}
    return fields


def is_up_to_date(
    obj: Mapping[str, Any], *, tool: ToolContext, settings: RenderSettings,
    catalog: ImageCatalog | None = None, spec: JobSpec | None = None,
) -> bool:
    """Whether the live ``obj`` still is what its stored spec renders to today.

    False for objects of the original system (no spec annotation: re-creating them makes them
    exact) and for specs that no longer render (an image gone from the catalog). Raises
    InvalidJobError, like :func:`read_spec`, for an object that is not a readable job.
    ``spec``, when the caller already read it with :func:`read_spec`, spares a second read.
    """
    annotations = _mapping(_mapping(obj.get("metadata")).get("annotations"))
    if SPEC_ANNOTATION not in annotations:
        return False
    if spec is None:
        spec = read_spec(obj, home=tool.identity.home, catalog=catalog)
    try:
        wanted = render_job(spec, tool=tool, settings=settings, catalog=catalog)[0]
    except InvalidInputError:
        return False
    if obj.get("kind") not in (None, wanted["kind"]):
        return False
    metadata = dict(wanted["metadata"])
    # The stored text may be an older spelling of the same spec: the spec decides, not the text.
    metadata["annotations"] = {
        key: value for key, value in metadata["annotations"].items() if key != SPEC_ANNOTATION
    }
    return _covers(obj.get("metadata"), metadata) and _covers(obj.get("spec"), wanted["spec"])


def _covers(live: object, wanted: object, *, quantities: bool = False) -> bool:
    """Whether every value in ``wanted`` is in ``live`` (see the module docstring)."""
    if isinstance(wanted, dict):
        if not isinstance(live, dict):
            return False
        for key, value in wanted.items():
            if key not in live:
                return False
            if quantities:
                if not _same_quantity(live[key], value):
                    return False
            elif not _covers(live[key], value, quantities=key in ("limits", "requests")):
                return False
        return True
    if isinstance(wanted, list):
        return isinstance(live, list) and _covers_list(live, wanted)
    return live == wanted and isinstance(live, bool) == isinstance(wanted, bool)


def _covers_list(live: list[Any], wanted: list[Any]) -> bool:
    if wanted and all(isinstance(item, dict) and "name" in item for item in wanted):
        # Named items (containers, env): webhooks may add their own, so match by name.
        by_name = {item.get("name"): item for item in live if isinstance(item, dict)}
        return all(
            item["name"] in by_name and _covers(by_name[item["name"]], item) for item in wanted
        )
    return len(live) == len(wanted) and all(
        _covers(have, want) for have, want in zip(live, wanted, strict=True)
    )


def _same_quantity(live: object, wanted: object) -> bool:
    if live == wanted:
        return True
    if not isinstance(live, str | int) or not isinstance(wanted, str | int):
        return False
    try:
        return Quantity.parse(live) == Quantity.parse(wanted)
    except InvalidQuantityError:
        return False
