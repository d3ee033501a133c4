"""The API's operations, shared by the modern and the legacy routes.

Each operation reads what it needs from a :class:`Call`, makes ONE core call (through
:class:`~tjf_http.executor.CoreCalls`: in the thread pool, or inline for a runtime that never
blocks) and returns an :class:`Outcome`: typed results, not JSON. The route's :class:`Flavour`
decides the rest: which tool is meant (the path's, checked against the caller, or the caller's own),
how a job body is spelled, and how results and errors are rendered. So the legacy routes are a
second rendering of the same operations, never a second implementation.

Logs are the exception to "return an Outcome": the operation streams ``text/plain`` lines
itself, the same for every flavour.

Every error body names its error by a stable ``type`` (:func:`error_type`): the snake case
name of the core error class (``not_found``, ``already_exists``, ``invalid_input`` …), or of
the HTTP layer's own refusals (:data:`HTTP_ERROR_TYPES`, ``call_timeout``, ``busy``), so that
clients tell errors apart without reading messages. :data:`ERROR_TYPES` lists them all.

JSON is written with orjson (:func:`dumps`, :func:`json_response`): a list of a hundred jobs
takes a tenth of the time the standard library's encoder needs, and the bytes go out as they
are.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

import attrs
import orjson
from aiohttp import web

from tjf_core import errors as core_errors
from tjf_core.errors import TjfError
from tjf_core.identity import ToolIdentity
from tjf_core.images import Image
from tjf_core.model import JobSpec
from tjf_core.quota import QuotaCategory
from tjf_core.service import ApplyResult, Job, JobList, JobService
from tjf_http import bodies
from tjf_http.executor import CoreCalls

__all__ = [
    "ERROR_TYPES",
    "HTTP_ERROR_TYPES",
    "OPERATIONS",
    "Call",
    "Done",
    "Flavour",
    "Health",
    "Images",
    "Operation",
    "Outcome",
    "Quota",
    "Result",
    "Upserted",
    "dumps",
    "error_type",
    "json_response",
]

log = logging.getLogger(__name__)


#: The ``type`` of the HTTP layer's own refusals, by status (other 4xx: ``bad_request``).
HTTP_ERROR_TYPES: dict[int, str] = {
    400: "bad_request",
    404: "no_route",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    500: "internal",
}


def error_type(error: TjfError) -> str:
    """The ``type`` of ``error``'s body: ``NotFoundError`` → ``not_found``.

    An error that says its own type (``error_type``, the HTTP layer's refusals) gives that;
    otherwise its class's, or for a class of neither the core's error tree nor this package
    (a runtime's own subclass) the nearest core class's: clients know only those.
    """
    named = getattr(error, "error_type", None)
    if isinstance(named, str):
        return named
    for cls in type(error).__mro__:
        if cls.__module__ == core_errors.__name__ or cls.__module__.startswith("tjf_http."):
            return core_errors.type_name(cls)
    return core_errors.type_name(TjfError)  # not reached: every TjfError has TjfError in its MRO


#: Every ``type`` an error body may carry (the OpenAPI document's enum).
ERROR_TYPES: tuple[str, ...] = tuple(sorted({
    *core_errors.ERRORS_BY_TYPE, *HTTP_ERROR_TYPES.values(), "call_timeout", "busy"}))


def dumps(data: object) -> bytes:
    """``data`` (JSON-shaped: dicts, lists, text, numbers, None) as compact UTF-8 JSON."""
    return orjson.dumps(data)


def json_response(data: object, *, status: int = 200) -> web.Response:
    """A JSON answer, ``application/json; charset=utf-8`` as aiohttp's own would say."""
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json", charset="utf-8")


@attrs.frozen
class Upserted:
    job: Job
    changed: bool


@attrs.frozen
class Images:
    images: tuple[Image, ...]


@attrs.frozen
class Quota:
    categories: tuple[QuotaCategory, ...]


@attrs.frozen
class Done:
    """Nothing to show but the messages."""


@attrs.frozen
class Health:
    status: str = "ok"


Result = Job | JobList | Upserted | Images | Quota | ApplyResult | Done | Health


@attrs.frozen(kw_only=True)
class Outcome:
    result: Result
    status: int = 200
    info: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class Flavour(Protocol):
    """How one family of routes names the tool, reads a job and renders answers."""

    @property
    def name(self) -> str: ...

    def tool(self, request: web.Request, caller: ToolIdentity) -> ToolIdentity:
        """The tool the request acts on; ForbiddenError when the caller may not."""
        ...

    async def read_job(self, request: web.Request) -> JobSpec:
        """The job definition in the request's body."""
        ...

    def render(self, outcome: Outcome) -> web.Response:
        ...

    def render_error(self, error: TjfError, *, status: int, request_id: str) -> web.Response:
        ...


@attrs.frozen(kw_only=True)
class Call:
    """One request as an operation sees it."""

    request: web.Request
    flavour: Flavour
    service: JobService
    calls: CoreCalls
    #: The authenticated caller (None on the public routes).
    caller: ToolIdentity | None

    @property
    def tool(self) -> ToolIdentity:
        if self.caller is None:  # a public route asked for a tool: a wiring mistake
            raise RuntimeError("this route has no authenticated caller")
        return self.flavour.tool(self.request, self.caller)

    @property
    def name(self) -> str:
        return self.request.match_info["name"]


Operation = Callable[[Call], Awaitable[Outcome | web.StreamResponse]]


async def list_jobs(call: Call) -> Outcome:
    jobs = await call.calls.call(call.service.list, call.tool)
    return Outcome(result=jobs, warnings=jobs.warnings)


async def create_job(call: Call) -> Outcome:
    tool = call.tool
    spec = await call.flavour.read_job(call.request)
    job = await call.calls.call(call.service.run, tool, spec)
    return Outcome(result=job, status=201, info=(f"job {spec.name!r} created",))


async def upsert_job(call: Call) -> Outcome:
    tool = call.tool
    spec = await call.flavour.read_job(call.request)
    job, changed = await call.calls.call(call.service.upsert, tool, spec)
    said = f"job {spec.name!r} " + ("created or updated" if changed else "is unchanged")
    return Outcome(result=Upserted(job, changed), info=(said,))


async def flush_jobs(call: Call) -> Outcome:
    tool = call.tool
    await call.calls.call(call.service.flush, tool)
    return Outcome(result=Done(), info=(f"every job of tool {tool.tool!r} was deleted",))


async def get_job(call: Call) -> Outcome:
    return Outcome(result=await call.calls.call(call.service.get, call.tool, call.name))


async def delete_job(call: Call) -> Outcome:
    await call.calls.call(call.service.delete, call.tool, call.name)
    return Outcome(result=Done(), info=(f"job {call.name!r} was deleted",))


async def restart_job(call: Call) -> Outcome:
    await call.calls.call(call.service.restart, call.tool, call.name)
    return Outcome(result=Done(), info=(f"job {call.name!r} was restarted",))


async def apply_jobs(call: Call) -> Outcome:
    tool = call.tool
    dry_run = bodies.bool_query(call.request, "dry_run")
    only = call.request.query.get("job") or None
    specs = await bodies.read_jobs(call.request)
    result = await call.calls.call(call.service.apply, tool, specs, only=only, dry_run=dry_run)
    changes = sum(1 for change in result.plan.changes if change.action.value != "unchanged")
    said = f"{changes} job(s) would change" if dry_run else f"{changes} job(s) changed"
    return Outcome(result=result, info=(said,))


async def list_images(call: Call) -> Outcome:
    images = await call.calls.call(call.service.images)
    return Outcome(result=Images(tuple(images)))


async def get_quota(call: Call) -> Outcome:
    categories = await call.calls.call(call.service.quota, call.tool)
    return Outcome(result=Quota(tuple(categories)))


async def healthz(call: Call) -> Outcome:
    return Outcome(result=Health())


async def job_logs(call: Call) -> web.StreamResponse:
    """The job's output as ``text/plain`` lines; ``follow`` streams while the job runs."""
    tool, name = call.tool, call.name
    lines = bodies.int_query(call.request, "lines", minimum=1)
    follow = bodies.bool_query(call.request, "follow")

    def open_lines(keep_following: Callable[[], bool]) -> Iterator[str]:
        return call.service.logs(tool, name, lines=lines, follow=follow,
                                 keep_following=keep_following)

    stream = await call.calls.open_lines(open_lines, follow=follow)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                           "Cache-Control": "no-store"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(call.request)
        poll = call.service.follow_interval
        while batch := await stream.next_batch(wanted=lambda: _connected(call.request),
                                               poll=poll):
            await response.write(_encode(batch))
        if _connected(call.request):
            await response.write_eof()
    except (ConnectionError, TjfError) as error:
        # Too late for an error status: the stream just ends (the client sees it cut short).
        log.info("log stream of %s/%s ended early: %s", tool.tool, name, error)
    finally:
        stream.close()
    return response


def _connected(request: web.Request) -> bool:
    # A follower waiting for the next line writes nothing, so a client that left is only
    # noticed by its connection (aiohttp does not cancel handlers when clients leave).
    transport = request.transport
    return transport is not None and not transport.is_closing()


def _encode(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8", errors="replace")


#: Every operation by the name the route table uses.
OPERATIONS: dict[str, Operation] = {
    "list_jobs": list_jobs,
    "create_job": create_job,
    "upsert_job": upsert_job,
    "flush_jobs": flush_jobs,
    "get_job": get_job,
    "delete_job": delete_job,
    "restart_job": restart_job,
    "job_logs": job_logs,
    "apply_jobs": apply_jobs,
    "list_images": list_images,
    "get_quota": get_quota,
    "healthz": healthz,
}
