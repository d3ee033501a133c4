"""The seed's routes (``/api/v1/…``, 2021-2023 clients) over the same operations.

What differs from the modern routes, and only that, lives here:

* the tool is always the caller's own (the old paths name none);
* a job arrives as a form (the seed's ``run``) or a JSON object, with ``cmd``/``imagename``
  and string flags (``"true"``) as those clients send them; ``filelog`` is OPT-IN there (the
  clients send ``filelog=true`` unless told ``--no-filelog``), so a missing one means off;
* answers are bare: a job (:func:`~tjf_core.views.legacy_job_view`), a list of jobs or images,
  the quota, ``{}`` for deletes and restarts; errors are ``{"error": "<message>"}``, which
  those clients print (plus the ``type`` and ``request_id``, which they ignore).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tjf_core.convert import job_from_api
from tjf_core.errors import TjfError
from tjf_core.identity import ToolIdentity
from tjf_core.model import JobSpec
from tjf_core.service import Job, JobList
from tjf_core.views import image_view, legacy_job_view, quota_view
from tjf_http.bodies import read_fields
from tjf_http.operations import (
    Done,
    Health,
    Images,
    Outcome,
    Quota,
    error_type,
    json_response,
)

__all__ = ["LEGACY", "LegacyFlavour"]


class LegacyFlavour:
    name = "legacy"

    def tool(self, request: web.Request, caller: ToolIdentity) -> ToolIdentity:
        return caller

    async def read_job(self, request: web.Request) -> JobSpec:
        fields = await read_fields(request)
        if fields.get("filelog") is None:
            fields["filelog"] = False
        return job_from_api(fields)

    def render(self, outcome: Outcome) -> web.Response:
        result = outcome.result
        body: Any
        if isinstance(result, Job):
            body = legacy_job_view(result)
        elif isinstance(result, JobList):
            body = [legacy_job_view(job) for job in result.jobs]
        elif isinstance(result, Images):
            body = [image_view(image) for image in result.images]
        elif isinstance(result, Quota):
            body = quota_view(result.categories)
        elif isinstance(result, Health):
            body = {"status": result.status}
        elif isinstance(result, Done):
            body = {}
        else:  # the legacy route table offers no other operation
            raise TypeError(f"no legacy rendering of {type(result).__name__}")
        return json_response(body, status=outcome.status)

    def render_error(self, error: TjfError, *, status: int, request_id: str) -> web.Response:
        return json_response({"error": str(error), "type": error_type(error),
                              "request_id": request_id}, status=status)


LEGACY = LegacyFlavour()
