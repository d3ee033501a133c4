"""The JSON Schemas (draft 2020-12) of the API's bodies, for :mod:`tjf_http.openapi`.

What the route table only names is spelled out here:

* the job a client sends (:data:`JOB_FIELD_SCHEMAS`, one schema per field of
  :class:`~tjf_core.model.JobSpec`; enums, lengths and ranges come from :mod:`tjf_core.model`),
  as API JSON, as a jobs.yaml entry and as the legacy routes' form fields;
* the answers of :mod:`tjf_core.views` (job, legacy job, images, quota, plan), the ``messages``
  envelope, and the error bodies with ``problems`` and ``request_id``;
* :data:`SHAPE_SCHEMAS`: each answer shape of :data:`~tjf_http.routes.SHAPES` as a media type
  and a schema.

A ``JobSpec`` field without a schema here stops the document from being built (a
``KeyError`` naming it), so the tests notice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from tjf_core.images import ImageState
from tjf_core.model import (
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    MAX_NAME_LENGTH,
    MAX_RETRY,
    Concurrency,
    Emails,
    HealthCheckType,
    JobKind,
    JobSpec,
    Mount,
    PortProtocol,
)
from tjf_core.plan import Action
from tjf_core.quantity import MAX_MAGNITUDE
from tjf_core.status import StatusShort
from tjf_core.views import IMAGE_STATE_UNKNOWN
from tjf_http.operations import ERROR_TYPES

__all__ = [
    "JOB_FIELD_SCHEMAS",
    "JSON",
    "NAME",
    "NAME_PATTERN",
    "QUANTITY_PATTERN",
    "SHAPE_SCHEMAS",
    "component_schemas",
    "ref",
]

#: A job name: an RFC 1123 subdomain (what :class:`~tjf_core.model.JobSpec` accepts).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A Kubernetes quantity as text (the grammar of :mod:`tjf_core.quantity`).
QUANTITY_PATTERN = (r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
                    r"([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")

JSON = "application/json"
_TEXT = "text/plain"
_REF = "#/components/schemas/"


def _values(enum_type: Iterable[Any]) -> list[str]:
    return [member.value for member in enum_type]


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": _REF + name}


def _strings() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}}


def _object(properties: Mapping[str, Any], *, required: Iterable[str] = (),
            description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties),
                              "required": list(required), "additionalProperties": False}
    if description is not None:
        schema["description"] = description
    return schema


def _quantity(what: str, default: str) -> dict[str, Any]:
    return {
        "description": f"{what}: a Kubernetes quantity (text such as 500m, 0.5, 512Mi, or a whole "
                       "number); positive, and within the namespace's LimitRange",
        "anyOf": [
            {"type": "string", "pattern": QUANTITY_PATTERN, "maxLength": 100},
            {"type": "integer", "minimum": 1, "maximum": MAX_MAGNITUDE},
        ],
        "default": default,
    }


def _text(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


NAME = _text(f"the job's name: lower case letters, digits, '-' and '.', starting and ending "
             f"with a letter or digit, at most {MAX_NAME_LENGTH} characters (a job with a "
             "port: no '.', starting with a letter)",
             minLength=1, maxLength=MAX_NAME_LENGTH, pattern=NAME_PATTERN)
_COMMAND = _text("the shell command line to run (in the tool's home)", minLength=1,
                 pattern=r"\S")
_IMAGE = _text("the image: a short name, alias or URL from GET /v1/tool/{tool}/images",
               minLength=1, pattern=r"\S")
_LOG_FILE = _text("a file the output is appended to (relative: in the tool's home; absolute: "
                  "inside it); only with filelog", minLength=1)

_HEALTH_CHECK = _object({
    "type": {"enum": _values(HealthCheckType)},
    "script": _text("a command that exits 0 when healthy (type script)", minLength=1),
    "path": _text("the URL path answered with 2xx when healthy (type http; needs a tcp port)",
                  pattern="^/"),
}, required=["type"], description="how a continuous job is known to be healthy")

#: The schema of every :class:`~tjf_core.model.JobSpec` field, as API JSON carries it.
JOB_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "name": NAME,
    "command": _COMMAND,
    "image": _IMAGE,
    "schedule": _text("cron text (five fields, or @hourly @daily @weekly @monthly @yearly, "
                      "which are spread over the period); scheduled jobs only", minLength=1),
    "kind": {"enum": _values(JobKind), "description": "one-off (the default without a "
             "schedule), scheduled (the default with one) or continuous"},
    "timezone": _text("an IANA time zone for the schedule (default UTC); scheduled jobs only",
                      minLength=1),
    "concurrency": {"enum": _values(Concurrency), "default": Concurrency.FORBID.value,
                    "description": "what a scheduled run does while the last still runs"},
    "filelog": {"type": "boolean", "default": True,
                "description": "append stdout/stderr to files in the tool's home"},
    "filelog_stdout": _LOG_FILE | {"description": "stdout's file (default <name>.out)"},
    "filelog_stderr": _LOG_FILE | {"description": "stderr's file (default <name>.err)"},
    "emails": {"enum": _values(Emails), "default": Emails.NONE.value,
               "description": "which changes of the job's pods are mailed to the tool"},
    "retry": {"type": "integer", "minimum": 0, "maximum": MAX_RETRY, "default": 0,
              "description": "how often a failed run is retried; not for continuous jobs"},
    "memory": _quantity("memory limit", str(DEFAULT_MEMORY)),
    "cpu": _quantity("cpu limit", str(DEFAULT_CPU)),
    "mount": {"enum": _values(Mount), "default": Mount.ALL.value,
              "description": "which shared storage the job's pods get"},
    "timeout": {"type": "integer", "minimum": 1,
                "description": "seconds a run may take; not for continuous jobs"},
    "replicas": {"type": "integer", "minimum": 1,
                 "description": "how many pods run (default 1); continuous jobs only"},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535,
             "description": "a port exposed as a Service; continuous jobs only"},
    "port_protocol": {"enum": _values(PortProtocol),
                      "description": "the port's protocol (default tcp); only with port"},
    "health_check": ref("HealthCheck"),
}

#: Old spellings a client may send instead: alias -> the field it stands for.
_INPUT_ALIASES = {"cmd": "command", "imagename": "image"}
#: jobs.yaml keys that differ from the API's names (the kind and filelog are spelled apart).
_YAML_KEYS = {"memory": "mem", "filelog_stdout": "filelog-stdout",
              "filelog_stderr": "filelog-stderr", "health_check": "health-check",
              "port_protocol": "port-protocol", "kind": None, "filelog": None}
_CONTINUOUS = {"type": "boolean", "description": "true: a continuous job (same as kind)"}


def _job_fields() -> dict[str, dict[str, Any]]:
    # Fails for a JobSpec field without a schema: the document must know every field.
    return {field.name: JOB_FIELD_SCHEMAS[field.name] for field in attrs.fields(JobSpec)}


def _job_input() -> dict[str, Any]:
    fields = _job_fields()
    properties = dict(fields)
    for alias, field in _INPUT_ALIASES.items():
        properties[alias] = {**fields[field], "deprecated": True,
                             "description": f"the old name of {field}; give one of the two"}
    properties["continuous"] = {**_CONTINUOUS, "deprecated": True}
    schema = _object(properties, required=["name"], description=(
        "A job definition. Missing (or null) fields take their defaults; every problem is "
        "reported at once, one per field (400). Rules across fields: schedule, timezone and "
        "concurrency only for scheduled jobs; replicas, port and health_check only for "
        "continuous ones; retry and timeout not for continuous ones."))
    schema["allOf"] = [{"oneOf": [{"required": [field]}, {"required": [alias]}]}
                       for alias, field in _INPUT_ALIASES.items()]
    return schema


def _jobs_file_entry() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field, schema in _job_fields().items():
        key = _YAML_KEYS.get(field, field)
        if key is not None:
            properties[key] = schema
    properties["continuous"] = _CONTINUOUS
    properties["no-filelog"] = {"type": "boolean", "description": "true: no log files"}
    properties["wait"] = {"type": "boolean", "description": "one-off jobs: the command line "
                          "client waits for it (the API ignores it)"}
    return _object(properties, required=["name", "command", "image"],
                   description="One entry of a jobs.yaml file (dash-separated keys).")


def _as_form_field(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    # Form fields are text: flags are "true"/"false", numbers digits; no nested objects.
    kind = schema.get("type")
    if kind == "object" or "$ref" in schema:
        return None
    if kind == "boolean":
        return {"enum": ["true", "false"], "description": schema.get("description", "")}
    if kind == "integer":
        return {"type": "string", "pattern": "^[0-9]+$", "description": schema["description"]}
    if "anyOf" in schema:
        return {"type": "string", "pattern": QUANTITY_PATTERN, "maxLength": 100,
                "description": schema["description"]}
    return dict(schema)


def _legacy_form() -> dict[str, Any]:
    properties = {}
    for key, schema in _job_input()["properties"].items():
        field = _as_form_field(schema)
        if field is not None:
            properties[key] = field
    return _object(properties, required=["name"], description=(
        "A job as the 2021-2023 clients post it, as form fields; a missing filelog means "
        "false there."))


def _status() -> dict[str, Any]:
    when = {"type": ["string", "null"], "format": "date-time"}
    return _object({
        "short": {"enum": _values(StatusShort)},
        "duration": {"type": ["integer", "null"], "minimum": 0,
                     "description": "seconds the current (or last) run has run"},
        "up_to_date": {"type": "boolean", "description": "false: the live objects differ "
                       "from the definition (apply again to fix)"},
        "messages": _strings(),
        "previous_schedule": when,
        "next_schedule": when,
        "exit_code": {"type": ["integer", "null"],
                      "description": "the exit code of the finished run's container (short "
                      "succeeded or failed); null while it runs or when unknown"},
    }, required=["short", "duration", "up_to_date", "messages", "previous_schedule",
                 "next_schedule", "exit_code"])


def _job_view() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field, schema in _job_fields().items():
        properties[field] = schema
        if "anyOf" in schema:  # quantities are answered as canonical text
            properties[field] = {"type": "string", "pattern": QUANTITY_PATTERN,
                                 "description": schema["description"]}
    properties |= {
        "image_state": {"enum": [*_values(ImageState), IMAGE_STATE_UNKNOWN]},
        "schedule_actual": _text("the schedule the cluster runs (macros spread)"),
        "status": ref("JobStatus"),
        "status_short": {"type": "string"},
        "status_long": {"type": "string"},
    }
    required = ["name", "command", "image", "kind", "filelog", "emails", "retry", "memory",
                "cpu", "mount", "image_state", "status", "status_short", "status_long"]
    return _object(properties, required=required,
                   description="A job: its definition with every default filled in, and status.")


def _legacy_job_view() -> dict[str, Any]:
    text_or_null = {"type": ["string", "null"]}
    properties = {
        "name": {"type": "string"}, "cmd": {"type": "string"}, "image": {"type": "string"},
        "image_state": {"enum": [*_values(ImageState), IMAGE_STATE_UNKNOWN]},
        "filelog": {"enum": ["True", "False"]},
        "filelog_stdout": text_or_null, "filelog_stderr": text_or_null,
        "emails": {"enum": _values(Emails)}, "retry": {"type": "integer"},
        "schedule": text_or_null, "schedule_actual": text_or_null,
        "continuous": {"enum": [True, None]},
        "memory": {"type": "string"}, "cpu": {"type": "string"},
        "status_short": {"type": "string"}, "status_long": {"type": "string"},
    }
    optional = {"memory", "cpu"}
    return _object(properties, required=[key for key in properties if key not in optional],
                   description="A job as the 2021-2023 clients read it.")


def _quota() -> dict[str, Any]:
    item = _object({"name": {"type": "string"}, "limit": {"type": ["string", "null"]},
                    "used": {"type": ["string", "null"]}}, required=["name", "limit", "used"])
    category = _object({"name": {"type": "string"}, "items": {"type": "array", "items": item}},
                       required=["name", "items"])
    return _object({"categories": {"type": "array", "items": category}},
                   required=["categories"])


def _plan() -> dict[str, Any]:
    change = _object({
        "name": {"type": "string"},
        "action": {"enum": _values(Action)},
        "changed_fields": _strings(),
        "stale": {"type": "boolean", "description": "an unchanged definition whose live "
                  "objects drifted"},
    }, required=["name", "action", "changed_fields", "stale"])
    counts = _object({action.value: {"type": "integer", "minimum": 0} for action in Action},
                     required=_values(Action))
    return _object({"dry_run": {"type": "boolean"}, "changed": {"type": "boolean"},
                    "jobs": {"type": "array", "items": change}, "counts": counts},
                   required=["dry_run", "changed", "jobs", "counts"])


def _answer(**fields: Any) -> dict[str, Any]:
    """A modern answer: ``fields`` beside the messages."""
    return _object({**fields, "messages": ref("Messages")}, required=[*fields, "messages"])


_ERROR_TYPE = {
    "type": "string", "enum": list(ERROR_TYPES),
    "description": "what went wrong, for programs: the core error's class in snake case "
                   "(not_found, already_exists, quota_exceeded, invalid_input, "
                   "runtime_unavailable …) or the HTTP layer's own refusal (no_route, "
                   "method_not_allowed, body_too_large, unsupported_media_type, call_timeout, "
                   "busy, internal); a client that does not know a type goes by the status",
}


def component_schemas() -> dict[str, Any]:
    """The schemas the document's ``#/components/schemas/<name>`` references point at."""
    messages = {key: _strings() for key in ("info", "warning", "error")}
    problem = _object({"field": _text("the field, as the request spelled it ('' : the whole "
                                      "input)"), "message": {"type": "string"}},
                      required=["field", "message"])
    return {
        "Messages": _object(messages, required=list(messages)),
        "Error": _object({"type": _ERROR_TYPE,
                          "messages": ref("Messages"),
                          "problems": {"type": "array", "items": problem},
                          "request_id": _text("quote it when reporting a problem")},
                         required=["type", "messages", "problems", "request_id"]),
        "LegacyError": _object({"error": {"type": "string"}, "type": _ERROR_TYPE,
                                "request_id": {"type": "string"}},
                               required=["error", "type", "request_id"]),
        "JobInput": _job_input(),
        "JobsFileEntry": _jobs_file_entry(),
        "LegacyJobForm": _legacy_form(),
        "HealthCheck": _HEALTH_CHECK,
        "JobStatus": _status(),
        "Job": _job_view(),
        "LegacyJob": _legacy_job_view(),
        "Image": _object({"shortname": {"type": "string"}, "image": {"type": "string"}},
                         required=["shortname", "image"]),
        "Quota": _quota(),
        "Plan": _plan(),
    }


#: Each shape of :data:`~tjf_http.routes.SHAPES`: (media type, schema).
SHAPE_SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "job": (JSON, _answer(job=ref("Job"))),
    "jobs": (JSON, _answer(jobs={"type": "array", "items": ref("Job")})),
    "job_changed": (JSON, _answer(job=ref("Job"), job_changed={"type": "boolean"})),
    "plan": (JSON, _answer(plan=ref("Plan"))),
    "images": (JSON, _answer(images={"type": "array", "items": ref("Image")})),
    "quota": (JSON, _answer(quota=ref("Quota"))),
    "messages": (JSON, _answer()),
    "health": (JSON, _answer(status={"const": "ok"})),
    "logs": (_TEXT, {"type": "string", "description": "one log line per line"}),
    "metrics": (_TEXT, {"type": "string", "description": "Prometheus text format"}),
    "openapi": (JSON, {"type": "object", "required": ["openapi", "info", "paths"]}),
    "legacy_job": (JSON, ref("LegacyJob")),
    "legacy_jobs": (JSON, {"type": "array", "items": ref("LegacyJob")}),
    "legacy_images": (JSON, {"type": "array", "items": ref("Image")}),
    "legacy_quota": (JSON, ref("Quota")),
    "legacy_done": (JSON, _object({})),
}
