"""The route table: every route of the API, in one place, as data.

:data:`ROUTES` is what the server registers and what the API's documentation (OpenAPI) and its
client are written from: method, path, the operation it runs (:mod:`tjf_http.operations`), the
flavour that renders it, the request bodies and query parameters it reads, and its answers by
status with the name of their JSON shape (:data:`SHAPES`). Paths are written without a
trailing slash; each is served with and without one.

Modern answers are objects that always carry ``messages: {info: [], warning: [], error: []}``;
modern errors add ``problems: [{field, message}]`` and ``request_id``. Legacy answers are
bare; legacy errors are ``{"error": "<message>", "request_id": …}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["ERRORS", "ROUTES", "SHAPES", "Route"]


@attrs.frozen(kw_only=True)
class Route:
    method: str
    path: str
    operation: str
    #: ``modern``, ``legacy`` or ``ops`` (modern rendering, no identity needed).
    flavour: str
    summary: str
    #: Content types of the request body it reads (none: no body).
    body: tuple[str, ...] = ()
    #: Query parameters: name -> meaning.
    query: Mapping[str, str] = attrs.field(factory=dict)
    #: Status -> shape name (:data:`SHAPES`) of the successful answer(s).
    responses: Mapping[int, str] = attrs.field(factory=dict)

    @property
    def public(self) -> bool:
        """Served without an identity, on every listener."""
        return self.flavour == "ops"


#: The JSON shapes of answers, by name (fields of jobs: :mod:`tjf_core.views`).
SHAPES: dict[str, str] = {
    "job": "{job: <job_view>, messages}",
    "jobs": "{jobs: [<job_view>], messages} (warnings name jobs that cannot be read)",
    "job_changed": "{job: <job_view>, job_changed: bool, messages}",
    "plan": "{plan: {dry_run, changed, jobs: [{name, action: create|update|delete|unchanged, "
            "changed_fields: [str], stale: bool}], counts: {create, update, delete, "
            "unchanged}}, messages}",
    "images": "{images: [{shortname, image}], messages}",
    "quota": "{quota: {categories: [{name, items: [{name, limit, used}]}]}, messages}",
    "messages": "{messages}",
    "health": "{status: ok, messages}",
    "logs": "text/plain, one log line per line; chunked and open while followed",
    "metrics": "Prometheus text format",
    "openapi": "this API's OpenAPI 3.1 document (JSON)",
    "legacy_job": "<legacy_job_view>",
    "legacy_jobs": "[<legacy_job_view>]",
    "legacy_images": "[{shortname, image}]",
    "legacy_quota": "{categories: [{name, items: [{name, limit, used}]}]}",
    "legacy_done": "{}",
}

#: Error statuses any route may answer, with when.
ERRORS: dict[int, str] = {
    400: "invalid input; problems name each field",
    401: "no usable identity (certificate or proxy header)",
    403: "the path's tool is not the caller's",
    404: "no such job, or no such route",
    405: "the route does not take this method",
    409: "a job of that name exists, or the namespace quota refuses it",
    413: "the body is larger than server.max_body_bytes",
    415: "the body's content type is not one the route reads",
    500: "a bug or a configuration problem; quote the request_id",
    503: "the cluster (or a server limit) is unavailable; see Retry-After",
    504: "the cluster did not answer in time; the change may still happen",
}

_JSON = ("application/json",)
_FORM_OR_JSON = ("application/x-www-form-urlencoded", "multipart/form-data",
                 "application/json")
_JOBS_FILE = ("application/yaml", "application/json")
_LOGS_QUERY = {"lines": "only the last N lines (N >= 1)",
               "follow": "true: keep streaming new lines while the job runs"}
_T = "/v1/tool/{tool}"


def _modern(method: str, path: str, *, op: str, summary: str,
            responses: Mapping[int, str], body: tuple[str, ...] = (),
            query: Mapping[str, str] | None = None) -> Route:
    return Route(method=method, path=path, operation=op, flavour="modern",
                 summary=summary, body=body, query=query or {}, responses=responses)


def _legacy(method: str, path: str, *, op: str, summary: str,
            responses: Mapping[int, str], body: tuple[str, ...] = (),
            query: Mapping[str, str] | None = None) -> Route:
    return Route(method=method, path=path, operation=op, flavour="legacy",
                 summary=summary, body=body, query=query or {}, responses=responses)


ROUTES: tuple[Route, ...] = (
    # --- modern ----------------------------------------------------------------------------
    _modern("GET", f"{_T}/jobs", op="list_jobs",
            summary="Every job of the tool, with its status", responses={200: "jobs"}),
    _modern("POST", f"{_T}/jobs", op="create_job",
            summary="Create a job (a finished one-off job of the same name is replaced)",
            body=_JSON, responses={201: "job"}),
    _modern("PATCH", f"{_T}/jobs", op="upsert_job",
            summary="Create a job or make the existing one equal to the body; an unchanged "
                    "job keeps running",
            body=_JSON, responses={200: "job_changed"}),
    _modern("DELETE", f"{_T}/jobs", op="flush_jobs",
            summary="Delete every job of the tool", responses={200: "messages"}),
    _modern("GET", f"{_T}/jobs/{{name}}", op="get_job",
            summary="One job", responses={200: "job"}),
    _modern("DELETE", f"{_T}/jobs/{{name}}", op="delete_job",
            summary="Delete one job", responses={200: "messages"}),
    _modern("POST", f"{_T}/jobs/{{name}}/restart", op="restart_job",
            summary="Run a scheduled job now, or restart a continuous job's pods",
            responses={200: "messages"}),
    _modern("GET", f"{_T}/jobs/{{name}}/logs", op="job_logs",
            summary="The job's output", query=_LOGS_QUERY, responses={200: "logs"}),
    _modern("POST", f"{_T}/apply", op="apply_jobs",
            summary="Make the tool's jobs equal to a jobs file (YAML with jobs.yaml keys, or a "
                    "JSON list of jobs); nothing changes unless every job is valid",
            body=_JOBS_FILE,
            query={"dry_run": "true: only say what would change",
                   "job": "consider only the job of this name"},
            responses={200: "plan"}),
    _modern("GET", f"{_T}/images", op="list_images",
            summary="The images jobs can use", responses={200: "images"}),
    _modern("GET", f"{_T}/quotas", op="get_quota",
            summary="The tool's quota and its use", responses={200: "quota"}),
    Route(method="GET", path="/v1/healthz", operation="healthz", flavour="ops",
          summary="The server is up", responses={200: "health"}),
    Route(method="GET", path="/metrics", operation="metrics", flavour="ops",
          summary="Prometheus metrics", responses={200: "metrics"}),
    Route(method="GET", path="/openapi.json", operation="openapi", flavour="ops",
          summary="This API's OpenAPI 3.1 document", responses={200: "openapi"}),
    # --- legacy: the seed's routes ---------------------------------------------------------
    _legacy("POST", "/api/v1/run", op="create_job", summary="Create a job (form or JSON)",
            body=_FORM_OR_JSON, responses={201: "legacy_job"}),
    _legacy("GET", "/api/v1/show/{name}", op="get_job", summary="One job",
            responses={200: "legacy_job"}),
    _legacy("DELETE", "/api/v1/delete/{name}", op="delete_job", summary="Delete one job",
            responses={200: "legacy_done"}),
    _legacy("GET", "/api/v1/list", op="list_jobs", summary="Every job",
            responses={200: "legacy_jobs"}),
    _legacy("DELETE", "/api/v1/flush", op="flush_jobs", summary="Delete every job",
            responses={200: "legacy_done"}),
    _legacy("GET", "/api/v1/containers", op="list_images", summary="The images (old name)",
            responses={200: "legacy_images"}),
    _legacy("GET", "/api/v1/images", op="list_images", summary="The images",
            responses={200: "legacy_images"}),
    _legacy("POST", "/api/v1/restart/{name}", op="restart_job", summary="Restart a job",
            responses={200: "legacy_done"}),
    _legacy("GET", "/api/v1/quota", op="get_quota", summary="The quota",
            responses={200: "legacy_quota"}),
    # --- legacy: the 2023 client's JSON routes ---------------------------------------------
    _legacy("GET", "/api/v1/jobs", op="list_jobs", summary="Every job",
            responses={200: "legacy_jobs"}),
    _legacy("POST", "/api/v1/jobs", op="create_job", summary="Create a job",
            body=_FORM_OR_JSON, responses={201: "legacy_job"}),
    _legacy("DELETE", "/api/v1/jobs", op="flush_jobs", summary="Delete every job",
            responses={200: "legacy_done"}),
    _legacy("GET", "/api/v1/jobs/{name}", op="get_job", summary="One job",
            responses={200: "legacy_job"}),
    _legacy("DELETE", "/api/v1/jobs/{name}", op="delete_job", summary="Delete one job",
            responses={200: "legacy_done"}),
    _legacy("POST", "/api/v1/jobs/{name}/restart", op="restart_job", summary="Restart a job",
            responses={200: "legacy_done"}),
    _legacy("GET", "/api/v1/jobs/{name}/logs", op="job_logs", summary="The job's output",
            query=_LOGS_QUERY, responses={200: "logs"}),
)
