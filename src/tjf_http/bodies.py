"""Reading what a request carries: JSON, form or YAML bodies, and query parameters.

Only the transport's questions are answered here (is the content type one we read, is the
body well-formed, is ``lines`` a number); what a job may be is the core's
(:func:`~tjf_core.convert.job_from_api`, :func:`~tjf_core.convert.load_jobs_file`). Problems
name the parameter or the place in the body, as the core's do. Bodies larger than the
application's ``client_max_size`` are refused by aiohttp while reading (413).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tjf_core.convert import job_from_api, load_jobs_file
from tjf_core.errors import InvalidInputError, Problem
from tjf_core.model import JobSpec

__all__ = [
    "FORM_TYPES",
    "JSON_TYPES",
    "YAML_TYPES",
    "bool_query",
    "int_query",
    "read_fields",
    "read_jobs",
    "read_json",
]

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _is_json(content_type: str) -> bool:
    return content_type in JSON_TYPES or content_type.endswith("+json")


def _unsupported(request: web.BaseRequest, accepted: tuple[str, ...]) -> web.HTTPException:
    given = request.content_type if request.headers.get("Content-Type") else "none"
    return web.HTTPUnsupportedMediaType(
        text=f"content type {given!r} is not accepted here, use " + " or ".join(accepted))


async def read_json(request: web.BaseRequest) -> object:
    """The JSON body; 415 unless it is declared JSON, 400 when it does not parse."""
    if not _is_json(request.content_type) or not request.headers.get("Content-Type"):
        raise _unsupported(request, JSON_TYPES)
    return _parse_json(await _text(request))


async def _text(request: web.BaseRequest) -> str:
    try:
        return await request.text()
    except UnicodeDecodeError:
        raise InvalidInputError([Problem("", "the body is not UTF-8 text")]) from None


def _parse_json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError([Problem(
            "", f"the body is not valid JSON: {error.msg} at line {error.lineno}, "
                f"column {error.colno}")]) from None


async def read_fields(request: web.BaseRequest) -> dict[str, Any]:
    """A JSON object or a form's fields (the seed's clients post forms)."""
    if request.content_type in FORM_TYPES and request.headers.get("Content-Type"):
        form = await request.post()
        fields: dict[str, Any] = {}
        repeated: list[Problem] = []
        for key in form:
            values = form.getall(key)
            if len(values) > 1:
                repeated.append(Problem(key, "is given more than once, give it once"))
            value = values[0]
            if not isinstance(value, str):
                repeated.append(Problem(key, "is a file upload, give text"))
                continue
            fields[key] = value
        if repeated:
            raise InvalidInputError(repeated)
        return fields
    if not _is_json(request.content_type) or not request.headers.get("Content-Type"):
        raise _unsupported(request, (*JSON_TYPES, *FORM_TYPES))
    data = _parse_json(await _text(request))
    if not isinstance(data, Mapping):
        raise InvalidInputError([Problem("", "the body must be a JSON object of job fields")])
    return dict(data)


async def read_jobs(request: web.BaseRequest) -> list[JobSpec]:
    """A whole jobs file: YAML text (jobs.yaml keys) or a JSON list of jobs (API keys)."""
    content_type = request.content_type if request.headers.get("Content-Type") else ""
    if content_type in YAML_TYPES:
        return [entry.spec for entry in load_jobs_file(await _text(request))]
    if not _is_json(content_type):
        raise _unsupported(request, (*YAML_TYPES[:1], *JSON_TYPES))
    data = _parse_json(await _text(request))
    if not isinstance(data, list):
        raise InvalidInputError([Problem("", "the body must be a JSON list of jobs")])
    specs: list[JobSpec] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        name = item.get("name") if isinstance(item, Mapping) else None
        label = name if isinstance(name, str) and name else f"[{index}]"
        try:
            spec = job_from_api(item)
        except InvalidInputError as error:
            problems.extend(problem.under(label) for problem in error.problems)
            continue
        if spec.name in seen:
            problems.append(Problem(f"[{index}].name",
                                    f"{spec.name!r} is already used by entry [{seen[spec.name]}]"))
        seen.setdefault(spec.name, index)
        specs.append(spec)
    if problems:
        raise InvalidInputError(problems)
    return specs


def bool_query(request: web.BaseRequest, name: str) -> bool:
    """A true/false query parameter (absent: false; ``?follow`` alone: true)."""
    value = request.query.get(name)
    if value is None:
        return False
    if value.lower() in ("", *_TRUE):
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidInputError([Problem(name, f"{value!r} is not allowed, use true or false")])


def int_query(request: web.BaseRequest, name: str, *, minimum: int) -> int | None:
    """A whole-number query parameter of at least ``minimum`` (absent: None)."""
    value = request.query.get(name)
    if value is None:
        return None
    # The length check comes first: int() of thousands of digits is refused (and slow).
    if len(value) > 18 or not value.strip().isdigit() or int(value) < minimum:
        raise InvalidInputError([Problem(
            name, f"{value!r} is not allowed, use a whole number of at least {minimum}")])
    return int(value)
