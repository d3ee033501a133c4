"""The one converter between job specs and the outside world's documents.

Two document shapes carry jobs:

* **API JSON** (REFERENCE §1-2): field names as in :class:`~tjf_core.model.JobSpec`
  (``command``, ``image``, ``kind``, ``filelog_stdout`` …), and, on input, the old aliases
  ``cmd``, ``imagename`` and the ``continuous`` flag.
* **jobs.yaml entries** (REFERENCE §8): dash keys (``mem``, ``no-filelog``, ``health-check`` …).

Both go through ONE cattrs converter with strict hooks (no silent ``"5"`` → ``5`` for names, no
``True`` → ``1``): the document is first mapped onto the model's field names, cattrs structures
it collecting every type error, and the model's own validation adds every semantic one, so a
user sees all problems at once, each under the key they wrote, with "did you mean" for unknown
keys. ``null``/missing values mean "the default", so two spellings of one job compare equal.
"""

from __future__ import annotations

import difflib
import enum
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import yaml
from cattrs.errors import AttributeValidationNote, ClassValidationError, ForbiddenExtraKeysError

from tjf_core.errors import InvalidInputError, InvalidJobError, Problem
from tjf_core.images import ImageCatalog
from tjf_core.model import (
    Concurrency,
    Emails,
    HealthCheckType,
    JobKind,
    JobSpec,
    Mount,
    PortProtocol,
)
from tjf_core.quantity import Quantity

__all__ = [
    "JobsFileEntry",
    "converter",
    "dump_jobs_file",
    "job_from_api",
    "job_from_yaml_entry",
    "job_to_api",
    "job_to_yaml_entry",
    "load_jobs_file",
    "spec_from_json",
    "spec_to_json",
]

_E = TypeVar("_E", bound=enum.Enum)


class _BadValue(ValueError):
    """A value of the wrong type or shape; its text is the user-facing message."""


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise _BadValue(f"{_describe(value)} is not allowed, use text")
    return value


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise _BadValue(f"{_describe(value)} is not allowed, use a whole number")


def _structure_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _BadValue(f"{_describe(value)} is not allowed, use true or false")


def _structure_quantity(value: object, _: type) -> Quantity:
    if isinstance(value, float):
        # YAML reads `cpu: 0.5` as a float; its decimal text is what the user wrote.
        value = repr(value)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _BadValue(f"{_describe(value)} is not allowed, use a quantity such as 500m or 1Gi")
    try:
        return Quantity.parse(value)
    except InvalidInputError as error:
        raise _BadValue("; ".join(p.message for p in error.problems)) from None


def _enum_hook(enum_type: type[_E]) -> Callable[[object, type], _E]:
    choices = ", ".join(str(member.value) for member in enum_type)

    def structure(value: object, _: type) -> _E:
        if isinstance(value, str):
            for member in enum_type:
                if member.value == value.lower():
                    return member
        raise _BadValue(f"{_describe(value)} is not allowed, use one of {choices}")

    return structure


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(Quantity, _structure_quantity)
    conv.register_unstructure_hook(Quantity, str)
    for enum_type in (JobKind, Emails, Mount, Concurrency, PortProtocol, HealthCheckType):
        conv.register_structure_hook(enum_type, _enum_hook(enum_type))
    return conv


#: The converter. Structuring a JobSpec with it validates; see the module docstring.
converter = _make_converter()


@attrs.frozen
class _Format:
    """How one document shape names the model's fields."""

    label: str
    #: document key -> model field (only where they differ)
    renames: Mapping[str, str]
    #: document keys the model has no field for, handled before structuring
    extra_keys: frozenset[str]
    #: model fields that this shape does not accept under their own name
    hidden: frozenset[str] = frozenset()
    #: model field -> document key, for messages (where they differ)
    display: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def known_keys(self) -> set[str]:
        return {f for f in _FIELDS if f not in self.hidden} | set(self.renames) | self.extra_keys


_FIELDS = tuple(a.name for a in attrs.fields(JobSpec))

_API = _Format(
    label="job",
    renames={"cmd": "command", "imagename": "image"},
    extra_keys=frozenset({"continuous"}),
)
_YAML = _Format(
    label="jobs.yaml entry",
    renames={
        "mem": "memory",
        "filelog-stdout": "filelog_stdout",
        "filelog-stderr": "filelog_stderr",
        "health-check": "health_check",
        "port-protocol": "port_protocol",
    },
    extra_keys=frozenset({"continuous", "no-filelog", "wait"}),
    # the kind is spelled with `schedule`/`continuous`, and filelog as `no-filelog`
    hidden=frozenset(
        {"memory", "filelog_stdout", "filelog_stderr", "health_check", "port_protocol",
         "kind", "filelog"}
    ),
    display={
        "memory": "mem",
        "filelog_stdout": "filelog-stdout",
        "filelog_stderr": "filelog-stderr",
        "health_check": "health-check",
        "port_protocol": "port-protocol",
        "filelog": "no-filelog",
        "kind": "continuous",
    },
)
_API_ALIAS_OF = {"command": "cmd", "image": "imagename"}


def _display_path(fmt: _Format, field: str) -> str:
    # Nested paths keep their inner names: only the top-level field is renamed.
    head, _, rest = field.partition(".")
    shown = fmt.display.get(head, head)
    return f"{shown}.{rest}" if rest else shown


def _unknown_key(path: str, key: str, known: Iterable[str]) -> Problem:
    match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    if match:
        return Problem(path, f"is not a known key, did you mean {match[0]!r}?")
    return Problem(path, f"is not a known key, use one of {', '.join(sorted(known))}")


def _unknown_key_problems(data: Mapping[Any, Any], known: set[str]) -> list[Problem]:
    found = []
    for key in data:
        if not isinstance(key, str):
            found.append(Problem(str(key), "is not a valid key: keys are text"))
        elif key not in known:
            found.append(_unknown_key(key, key, known))
    return found


def _problems_from(error: BaseException, fmt: _Format, prefix: str = "") -> list[Problem]:
    """Turn a cattrs validation error tree into problems under the document's key names."""
    if isinstance(error, InvalidInputError):
        return [p.under(prefix) if prefix else p for p in error.problems]
    if isinstance(error, ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(error.cl)]
        return [_unknown_key(f"{prefix}.{k}" if prefix else k, k, known)
                for k in sorted(error.extra_fields)]
    if isinstance(error, ClassValidationError):
        found: list[Problem] = []
        for sub in error.exceptions:
            names = [n.name for n in getattr(sub, "__notes__", ())
                     if isinstance(n, AttributeValidationNote)]
            path = ".".join(x for x in (prefix, *names) if x)
            found.extend(_problems_from(sub, fmt, path))
        return found
    if isinstance(error, KeyError):
        return [Problem(prefix, "is required")]
    return [Problem(prefix, str(error))]


def _structure_spec(fields: dict[str, Any], fmt: _Format) -> JobSpec:
    """Structure model-named ``fields`` into a JobSpec, reporting every problem at once."""
    try:
        return converter.structure(fields, JobSpec)
    except ClassValidationError as error:
        type_problems = _problems_from(error, fmt)
    except InvalidInputError as error:
        type_problems = list(error.problems)
    # The fields that structured fine may still break the model's rules: check them too, with
    # the broken fields left out (and required ones stood in for), so the user sees all at once.
    failed = {p.path.partition(".")[0] for p in type_problems}
    if failed - set(_FIELDS) or not failed:
        raise InvalidJobError(_display(type_problems, fmt))
    rest = {k: v for k, v in fields.items() if k not in failed}
    stand_ins = {"name": "x", "command": "x", "image": "x"}
    rest.update({k: v for k, v in stand_ins.items() if k not in rest})
    semantic: list[Problem] = []
    try:
        converter.structure(rest, JobSpec)
    except ClassValidationError as error:
        semantic = _problems_from(error, fmt)
    except InvalidInputError as error:
        semantic = list(error.problems)
    skip = failed | {k for k in stand_ins if k not in fields}
    semantic = [p for p in semantic if p.path.partition(".")[0] not in skip]
    raise InvalidJobError(_display(type_problems + semantic, fmt))


def _display(problems: Iterable[Problem], fmt: _Format) -> list[Problem]:
    return [Problem(_display_path(fmt, p.path) if p.path else "", p.message) for p in problems]


def _require_mapping(data: object, what: str) -> Mapping[Any, Any]:
    if not isinstance(data, Mapping):
        raise InvalidJobError([Problem("", f"a {what} must be a mapping of keys to values, "
                                           f"got {_describe(data)}")])
    return data


def _kind_from_flag(
    data: Mapping[str, Any], fields: dict[str, Any], problems: list[Problem]
) -> None:
    flag = data.get("continuous")
    if flag is None:
        return
    try:
        continuous = _structure_bool(flag, bool)
    except _BadValue as error:
        problems.append(Problem("continuous", str(error)))
        return
    if continuous:
        if fields.get("kind") not in (None, JobKind.CONTINUOUS.value):
            problems.append(Problem("continuous", f"contradicts kind {fields['kind']!r}"))
        fields["kind"] = JobKind.CONTINUOUS.value


def job_from_api(data: object) -> JobSpec:
    """A JobSpec from API JSON (a decoded object). Raises InvalidJobError listing every problem."""
    doc = _require_mapping(data, _API.label)
    problems = _unknown_key_problems(doc, _API.known_keys)
    fields: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("continuous",) or not isinstance(key, str) or value is None:
            continue
        field = _API.renames.get(key, key)
        if field in fields:
            problems.append(Problem(key, f"give either {field!r} or {_API_ALIAS_OF[field]!r}, "
                                         "not both"))
        elif field in _FIELDS:
            fields[field] = value
    _kind_from_flag(doc, fields, problems)
    return _finish(fields, problems, _API)


def _finish(fields: dict[str, Any], problems: list[Problem], fmt: _Format) -> JobSpec:
    try:
        spec = _structure_spec(fields, fmt)
    except InvalidJobError as error:
        raise InvalidJobError([*problems, *error.problems]) from None
    if problems:
        raise InvalidJobError(problems)
    return spec


@attrs.frozen
class JobsFileEntry:
    """One entry of a jobs.yaml: the job, and whether ``load`` waits for it to finish."""

    spec: JobSpec
    wait: bool = False


def job_from_yaml_entry(data: object) -> JobsFileEntry:
    """A jobs.yaml entry (a decoded mapping with dash keys) as a JobsFileEntry."""
    doc = _require_mapping(data, _YAML.label)
    known = _YAML.known_keys
    problems = _unknown_key_problems(doc, known)
    fields: dict[str, Any] = {}
    for key, value in doc.items():
        if not isinstance(key, str) or key not in known or value is None:
            continue
        field = _YAML.renames.get(key, key)
        if field in _FIELDS:
            fields[field] = value
    _kind_from_flag(doc, fields, problems)
    wait = False
    for key, target in (("no-filelog", "filelog"), ("wait", "")):
        if doc.get(key) is None:
            continue
        try:
            flag = _structure_bool(doc[key], bool)
        except _BadValue as error:
            problems.append(Problem(key, str(error)))
            continue
        if target:
            fields[target] = not flag
        else:
            wait = flag
    spec = _finish(fields, problems, _YAML)
    if wait and spec.kind is not JobKind.ONE_OFF:
        raise InvalidJobError([Problem("wait", "is only allowed for one-off jobs")])
    return JobsFileEntry(spec=spec, wait=wait)


def _drop_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v
            for k, v in value.items() if v is not None}


def job_to_api(spec: JobSpec) -> dict[str, Any]:
    """The canonical API JSON of a spec: every field, defaults included, nulls left out."""
    return _drop_none(converter.unstructure(spec))


def spec_to_json(spec: JobSpec) -> str:
    """The spec as compact canonical JSON (the annotation stored on Kubernetes objects)."""
    return json.dumps(job_to_api(spec), sort_keys=True, separators=(",", ":"))


def spec_from_json(text: str) -> JobSpec:
    """The inverse of :func:`spec_to_json`."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise InvalidJobError([Problem("", f"not valid JSON: {error}")]) from None
    return job_from_api(data)


def _is_default(given: dict[str, Any], field: str) -> bool:
    """Whether the model fills in ``given[field]`` by itself when the field is left out."""
    try:
        rebuilt = JobSpec(**{k: v for k, v in given.items() if k != field})
    except InvalidJobError:
        return False
    return bool(getattr(rebuilt, field) == given[field])


def job_to_yaml_entry(spec: JobSpec, *, wait: bool = False) -> dict[str, Any]:
    """A jobs.yaml entry for ``spec``: dash keys, and only what differs from the defaults.

    A field is left out when the model would fill in the same value without it, so the entry
    is as short as what a person would write.
    """
    full = job_to_api(spec)
    given = attrs.asdict(spec, recurse=False)
    entry: dict[str, Any] = {}
    for field in _FIELDS:
        if field not in full:
            continue
        if field not in ("name", "command", "image") and _is_default(given, field):
            continue
        if field == "kind":
            if spec.kind is JobKind.CONTINUOUS:
                entry["continuous"] = True
        elif field == "filelog":
            entry["no-filelog"] = True
        else:
            entry[_YAML.display.get(field, field)] = full[field]
    if wait:
        entry["wait"] = True
    return entry


def load_jobs_file(text: str, *, catalog: ImageCatalog | None = None) -> list[JobsFileEntry]:
    """Parse a whole jobs.yaml; every problem of every entry is reported at once.

    Problems are placed under the entry's job name (or its position), e.g. ``myjob.retry``.
    With a ``catalog``, every entry's image must be in it.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise InvalidInputError([Problem("", f"not valid YAML{where}: {reason}")]) from None
    if data is None:
        data = []
    if not isinstance(data, list):
        raise InvalidInputError(
            [Problem("", f"a jobs file must be a list of jobs, got {_describe(data)}")]
        )
    entries: list[JobsFileEntry] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        label = f"[{index}]"
        if isinstance(item, Mapping) and isinstance(item.get("name"), str) and item["name"]:
            label = item["name"]
        try:
            entry = job_from_yaml_entry(item)
            if catalog is not None:
                catalog.resolve(entry.spec.image)
        except InvalidInputError as error:
            problems.extend(p.under(label) for p in error.problems)
            continue
        name = entry.spec.name
        if name in seen:
            problems.append(Problem(f"[{index}].name",
                                    f"{name!r} is already used by entry [{seen[name]}]"))
        seen.setdefault(name, index)
        entries.append(entry)
    if problems:
        raise InvalidInputError(problems)
    return entries


class _JobsFileDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, except that line-break characters YAML folds are escaped."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # With allow_unicode, PyYAML writes NEL and the Unicode line/paragraph separators raw in
    # plain or single-quoted scalars, and reads them back as spaces; double quotes escape them.
    style = '"' if any(ch in value for ch in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_JobsFileDumper.add_representer(str, _represent_str)


def dump_jobs_file(entries: Iterable[JobSpec | JobsFileEntry]) -> str:
    """A jobs.yaml document that :func:`load_jobs_file` reads back to the same specs."""
    docs = []
    for item in entries:
        entry = item if isinstance(item, JobsFileEntry) else JobsFileEntry(spec=item)
        docs.append(job_to_yaml_entry(entry.spec, wait=entry.wait))
    return yaml.dump(docs, Dumper=_JobsFileDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)
