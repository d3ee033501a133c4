"""The modern routes' flavour: ``/v1/tool/{tool}/…``, JSON bodies, the ``messages`` envelope.

Every answer is a JSON object with ``messages: {info, warning, error}``; results sit beside it
under one key per kind (``job``, ``jobs``, ``plan`` …; see :mod:`tjf_http.routes`). The tool
is the path's, and it must be the caller's own: the predecessor forgot to check (403 here).
Errors carry their ``type`` (:func:`~tjf_http.operations.error_type`), their lines in
``messages.error``, the problems of invalid input one per field in ``problems``, and the
``request_id`` to quote when reporting a failure.
"""

from __future__ import annotations

from typing import Any, assert_never

from aiohttp import web

from tjf_core.convert import job_from_api
from tjf_core.errors import ForbiddenError, InvalidInputError, TjfError
from tjf_core.identity import ToolIdentity
from tjf_core.model import JobSpec
from tjf_core.service import ApplyResult, Job, JobList
from tjf_core.views import (
    error_messages,
    image_view,
    job_list_view,
    job_view,
    messages_view,
    plan_view,
    quota_view,
)
from tjf_http.bodies import read_json
from tjf_http.operations import (
    Done,
    Health,
    Images,
    Outcome,
    Quota,
    Result,
    Upserted,
    error_type,
    json_response,
)

__all__ = ["MODERN", "ModernFlavour", "result_body"]


def result_body(result: Result) -> dict[str, Any]:
    """The modern JSON of a result, without the messages."""
    if isinstance(result, Job):
        return {"job": job_view(result)}
    if isinstance(result, JobList):
        return {"jobs": job_list_view(result)}
    if isinstance(result, Upserted):
        return {"job": job_view(result.job), "job_changed": result.changed}
    if isinstance(result, Images):
        return {"images": [image_view(image) for image in result.images]}
    if isinstance(result, Quota):
        return {"quota": quota_view(result.categories)}
    if isinstance(result, ApplyResult):
        return {"plan": plan_view(result)}
    if isinstance(result, Health):
        return {"status": result.status}
    if isinstance(result, Done):
        return {}
    assert_never(result)


class ModernFlavour:
    name = "modern"

    def tool(self, request: web.Request, caller: ToolIdentity) -> ToolIdentity:
        named = request.match_info["tool"]
        if named != caller.tool:
            raise ForbiddenError(
                f"tool {named!r} in the path is not the authenticated tool {caller.tool!r}: "
                f"use /v1/tool/{caller.tool}/...")
        return caller

    async def read_job(self, request: web.Request) -> JobSpec:
        return job_from_api(await read_json(request))

    def render(self, outcome: Outcome) -> web.Response:
        body = result_body(outcome.result)
        body["messages"] = messages_view(info=outcome.info, warning=outcome.warnings)
        return json_response(body, status=outcome.status)

    def render_error(self, error: TjfError, *, status: int, request_id: str) -> web.Response:
        problems = error.problems if isinstance(error, InvalidInputError) else ()
        body = {
            "type": error_type(error),
            "messages": messages_view(error=error_messages(error)),
            "problems": [{"field": p.path, "message": p.message} for p in problems],
            "request_id": request_id,
        }
        return json_response(body, status=status)


MODERN = ModernFlavour()
