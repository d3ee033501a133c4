"""The API's OpenAPI 3.1 document, written from the route table so the two cannot drift.

:func:`openapi_document` walks :data:`~tjf_http.routes.ROUTES`: every route becomes one
operation (its path, method, summary, path and query parameters, request bodies by content
type, and answers by status: the route's shape for success, the error body for each status of
:func:`error_statuses`), with mutual TLS as the security scheme except on the public routes.
The schemas themselves are :mod:`tjf_http.schemas`'. A shape or query parameter without a
schema stops the document from being built (a ``KeyError`` naming it), so the tests notice.

:func:`api_tables_markdown` renders the route and status tables of ``docs/api.md``;
``python -m tjf_http.openapi`` prints the document (``--markdown``: those tables).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from tjf_core.model import MAX_NAME_LENGTH
from tjf_http.routes import ERRORS, ROUTES, Route
from tjf_http.schemas import JSON, NAME, NAME_PATTERN, SHAPE_SCHEMAS, component_schemas, ref

__all__ = [
    "OPENAPI_VERSION",
    "api_tables_markdown",
    "error_statuses",
    "openapi_document",
    "operation_id",
]

OPENAPI_VERSION = "3.1.0"

#: Query parameters by name (their meaning is the route table's).
_QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "lines": {"type": "integer", "minimum": 1},
    "follow": {"type": "boolean"},
    "dry_run": {"type": "boolean"},
    "job": {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH},
}
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "tool": {"name": "tool", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "the tool: it must be the authenticated one (else 403)"},
    "name": {"name": "name", "in": "path", "required": True, "schema": dict(NAME),
             "description": "the job's name"},
}
#: Operations that may create objects: a taken name or the namespace quota answers 409.
_CREATING = {"create_job", "upsert_job", "apply_jobs", "restart_job"}


def error_statuses(route: Route) -> list[int]:
    """The error statuses a route may answer (their meanings: :data:`~tjf_http.routes.ERRORS`)."""
    if route.public:
        return [500]
    found = {401, 403, 500, 503, 504}
    if "{name}" in route.path:
        found.add(404)
    if route.body:
        found |= {400, 413, 415}
    if route.query or route.operation in _CREATING:  # restart: one-off jobs cannot be (400)
        found.add(400)
    if route.operation in _CREATING:
        found.add(409)
    return sorted(found)


def operation_id(route: Route) -> str:
    """Unique per route: the operation's name, legacy routes' with their path."""
    if route.flavour != "legacy":
        return route.operation
    slug = re.sub(r"[^a-z0-9]+", "_", route.path.lower()).strip("_")
    return f"legacy_{route.method.lower()}_{slug}"


def _body_schema(route: Route, content_type: str) -> dict[str, Any]:
    if route.operation == "apply_jobs":
        if content_type == JSON:
            return {"type": "array", "items": ref("JobInput")}
        return {"type": "array", "items": ref("JobsFileEntry")}
    return ref("JobInput") if content_type == JSON else ref("LegacyJobForm")


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "tags": [route.flavour],
    }
    parameters = [{"$ref": f"#/components/parameters/{name}"}
                  for name in [*re.findall(r"\{(\w+)\}", route.path), *route.query]]
    if parameters:
        operation["parameters"] = parameters
    if route.body:
        operation["requestBody"] = {"required": True, "content": {
            content_type: {"schema": _body_schema(route, content_type)}
            for content_type in route.body}}
    responses: dict[str, Any] = {}
    for status, shape in route.responses.items():
        media_type, schema = SHAPE_SCHEMAS[shape]
        responses[str(status)] = {"description": route.summary,
                                  "headers": {"X-Request-Id": {"$ref": "#/components/headers/"
                                                                       "RequestId"}},
                                  "content": {media_type: {"schema": schema}}}
    error = ref("LegacyError" if route.flavour == "legacy" else "Error")
    for status in error_statuses(route):
        headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}
        if status == 503:
            headers["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
        responses[str(status)] = {"description": ERRORS[status], "headers": headers,
                                  "content": {JSON: {"schema": error}}}
    operation["responses"] = responses
    if route.public:
        operation["security"] = []
    return operation


_DESCRIPTION = """\
Jobs of Toolforge tools: one-off, scheduled and continuous.

**Identity.** On the TLS listener the client presents its tool's certificate (mutual TLS):
the tool is the certificate's CN. Behind the TLS-terminating proxy, the proxy's
`ssl-client-subject-dn` header is believed on the trusted listener only. Modern routes name
the tool in the path (`/v1/tool/{tool}/...`); another tool than the caller's is 403.

**Answers.** Modern answers are JSON objects that carry `messages: {info, warning, error}`;
errors add `type`, `problems: [{field, message}]` and `request_id`. Legacy routes
(`/api/v1/...`) answer bare JSON and errors `{error, type, request_id}`. An error's `type` is
stable and machine-readable (`not_found`, `already_exists`, `invalid_input` …: the error
schema lists them). Every answer has an `X-Request-Id` header.
Every path is also served with a trailing slash.
"""


def _parameters(routes: Sequence[Route]) -> dict[str, Any]:
    """Every parameter once: the path's, and the query's with the route table's meaning."""
    parameters: dict[str, Any] = dict(_PATH_PARAMETERS)
    for route in routes:
        for name, meaning in route.query.items():
            known = parameters.setdefault(name, {
                "name": name, "in": "query", "required": False, "description": meaning,
                "schema": _QUERY_SCHEMAS[name]})
            if known["description"] != meaning:  # one name, one meaning: the doc says it once
                raise ValueError(f"query parameter {name!r} means {known['description']!r} "
                                 f"and, on {route.method} {route.path}, {meaning!r}")
    return parameters


def openapi_document(routes: Sequence[Route] = ROUTES, *, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (a plain JSON-ready dict)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Toolforge Jobs Framework API", "version": version,
                 "description": _DESCRIPTION,
                 "license": {"name": "AGPL-3.0-or-later",
                             "identifier": "AGPL-3.0-or-later"}},
        "security": [{"mutualTLS": []}],
        "tags": [{"name": "modern", "description": "the API: /v1/tool/{tool}/..."},
                 {"name": "legacy", "description": "the 2021-2023 clients' routes, kept "
                                                   "working: the tool is the caller's"},
                 {"name": "ops", "description": "health, metrics and this document; no "
                                                "identity needed"}],
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "parameters": _parameters(routes),
            "headers": {
                "RequestId": {"description": "names the request in the server's logs",
                              "required": True, "schema": {"type": "string"}},
                "RetryAfter": {"description": "seconds to wait before trying again",
                               "required": True,
                               "schema": {"type": "string", "pattern": "^[0-9]+$"}},
            },
            "securitySchemes": {"mutualTLS": {
                "type": "mutualTLS",
                "description": "the tool's client certificate (CN = the tool, O = the "
                               "configured organisation), signed by the cluster's CA"}},
        },
    }


def api_tables_markdown(routes: Sequence[Route] = ROUTES) -> str:
    """The generated part of ``docs/api.md``: every route, then every error status."""
    lines = ["| Method | Path | Answers | Errors | Does |", "|---|---|---|---|---|"]
    for route in routes:
        answers = ", ".join(f"{status} `{shape}`" for status, shape in route.responses.items())
        errors = " ".join(str(status) for status in error_statuses(route))
        query = "".join(f" `?{name}`" for name in route.query)
        lines.append(f"| {route.method} | `{route.path}`{query} | {answers} | {errors} | "
                     f"{route.summary} |")
    lines += ["", "| Status | When |", "|---|---|"]
    lines += [f"| {status} | {meaning} |" for status, meaning in ERRORS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m tjf_http.openapi [--markdown]
    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(api_tables_markdown())
    else:
        json.dump(openapi_document(), sys.stdout, indent=2)
        sys.stdout.write("\n")
