"""The OpenAPI document: complete, valid OpenAPI 3.1, true to the model and to real answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.definitions import OPENAPI_31

from tests.http.conftest import Harness
from tjf_core.convert import job_from_api, job_from_yaml_entry
from tjf_core.errors import InvalidInputError, InvalidJobError
from tjf_core.model import MAX_NAME_LENGTH, JobSpec
from tjf_core.quantity import Quantity
from tjf_http.openapi import api_tables_markdown, openapi_document, operation_id
from tjf_http.routes import ROUTES, SHAPES
from tjf_http.schemas import JOB_FIELD_SCHEMAS, NAME_PATTERN, QUANTITY_PATTERN

DOC = openapi_document()
SCHEMAS = DOC["components"]["schemas"]
API_DOC = Path(__file__).parents[2] / "docs" / "api.md"
JOBS = "/v1/tool/alpha/jobs"


def _schemas_in(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON Schema of the document (components and those inline in operations)."""
    if isinstance(node, dict):
        if "schema" in node and isinstance(node["schema"], dict):
            yield node["schema"]
        for value in node.values():
            yield from _schemas_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas_in(value)


def test_every_route_is_documented_and_nothing_else() -> None:
    documented = {(method.upper(), path) for path, item in DOC["paths"].items()
                  for method in item}
    assert documented == {(route.method, route.path) for route in ROUTES}


def test_operation_ids_are_unique() -> None:
    ids = [operation_id(route) for route in ROUTES]
    assert len(ids) == len(set(ids))


def test_the_document_is_valid_openapi_3_1() -> None:
    jsonschema.Draft202012Validator(OPENAPI_31).validate(DOC)
    # That schema leaves the Schema Objects alone: each must be valid JSON Schema 2020-12.
    for schema in [*SCHEMAS.values(), *_schemas_in(DOC["paths"])]:
        jsonschema.Draft202012Validator.check_schema(schema)
    schemathesis.openapi.from_dict(DOC).validate()


def test_documented_statuses_are_the_route_tables() -> None:
    for route in ROUTES:
        answers = DOC["paths"][route.path][route.method.lower()]["responses"]
        assert {int(status) for status in route.responses} <= {int(s) for s in answers}
        assert all(400 <= int(status) < 600 for status in answers
                   if int(status) not in route.responses)


def test_parameters_are_documented_once_with_the_route_tables_meaning() -> None:
    parameters = DOC["components"]["parameters"]
    assert set(parameters) == {"tool", "name", "lines", "follow", "dry_run", "job"}
    for route in ROUTES:
        for name, meaning in route.query.items():
            assert parameters[name]["description"] == meaning
    twice = [attrs.evolve(ROUTES[0], query={"lines": "one thing"}),
             attrs.evolve(ROUTES[1], query={"lines": "another"})]
    with pytest.raises(ValueError, match="query parameter 'lines' means"):
        openapi_document(twice)


def test_identity_is_mutual_tls_except_on_public_routes() -> None:
    assert DOC["components"]["securitySchemes"]["mutualTLS"]["type"] == "mutualTLS"
    assert DOC["security"] == [{"mutualTLS": []}]
    for route in ROUTES:
        operation = DOC["paths"][route.path][route.method.lower()]
        assert ("security" in operation) == route.public, route
        if route.public:
            assert operation["security"] == []


def test_every_job_field_is_documented_and_known_to_the_converter() -> None:
    job_input = SCHEMAS["JobInput"]["properties"]
    assert set(JOB_FIELD_SCHEMAS) <= set(job_input)
    for key in job_input:
        with pytest.raises(InvalidJobError) as refused:
            job_from_api({key: None, "surely-unknown": 1})
        assert [p.path for p in refused.value.problems if "known key" in p.message] == [
            "surely-unknown"], key
    for key in SCHEMAS["JobsFileEntry"]["properties"]:
        with pytest.raises(InvalidJobError) as refused:
            job_from_yaml_entry({key: None, "surely-unknown": 1})
        assert [p.path for p in refused.value.problems if "known key" in p.message] == [
            "surely-unknown"], key


def _documented_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and re.fullmatch(NAME_PATTERN[1:-1], name) is not None


def _model_accepts_name(name: str) -> bool:
    try:
        JobSpec(name=name, command="x", image="x")
    except InvalidJobError:
        return False
    return True


@settings(max_examples=300)
@given(st.from_regex(NAME_PATTERN[1:-1], fullmatch=True)
       | st.text(alphabet="ab9-._A \n", max_size=60))
def test_the_documented_name_rule_is_the_models(name: str) -> None:
    assert _documented_name(name) == _model_accepts_name(name)


@settings(max_examples=300)
@given(st.from_regex(QUANTITY_PATTERN[1:-1], fullmatch=True).filter(lambda t: len(t) <= 100)
       | st.text(alphabet="0123456789.+-eEkKMGiumn ", max_size=12))
def test_the_documented_quantity_text_is_the_models(text: str) -> None:
    documented = len(text) <= 100 and re.fullmatch(QUANTITY_PATTERN[1:-1], text) is not None
    refusal = None
    try:
        Quantity.parse(text)
    except InvalidInputError as error:
        refusal = str(error)
    if refusal is None:
        assert documented, text
    else:  # only the size of a well-formed quantity is beyond what a pattern can say
        assert not documented or "between" in refusal, (text, refusal)


# --- real answers conform to the documented schemas --------------------------------------


def _validate(body: Any, path: str, method: str, status: int) -> None:
    answer = DOC["paths"][path][method]["responses"][str(status)]
    [schema] = [content["schema"] for content in answer["content"].values()]
    # The document's components beside the schema, so its "#/components/..." refs resolve.
    jsonschema.Draft202012Validator({**schema, "components": DOC["components"]}).validate(body)


def test_modern_answers_are_as_documented(h: Harness) -> None:
    api = h.tls()
    t = "/v1/tool/{tool}"
    created = api.post(JOBS, json_body={"name": "hello", "cmd": "echo", "imagename": "bookworm"})
    _validate(created.json(), f"{t}/jobs", "post", 201)
    scheduled = api.post(JOBS, json_body={"name": "cron", "command": "./tick",
                                          "image": "bookworm", "schedule": "@daily"})
    _validate(scheduled.json(), f"{t}/jobs", "post", 201)
    upserted = api.request("PATCH", JOBS, json_body={
        "name": "web", "command": "./serve", "image": "bookworm", "kind": "continuous",
        "port": 8000, "health_check": {"type": "http", "path": "/healthz"}})
    _validate(upserted.json(), f"{t}/jobs", "patch", 200)
    _validate(api.get(JOBS).json(), f"{t}/jobs", "get", 200)
    _validate(api.get(f"{JOBS}/cron").json(), f"{t}/jobs/{{name}}", "get", 200)
    _validate(api.post(f"{JOBS}/web/restart").json(), f"{t}/jobs/{{name}}/restart", "post", 200)
    plan = api.post("/v1/tool/alpha/apply?dry_run=true", body=b"- {name: a, command: x, "
                    b"image: bookworm}\n", content_type="application/yaml")
    _validate(plan.json(), f"{t}/apply", "post", 200)
    _validate(api.get("/v1/tool/alpha/images").json(), f"{t}/images", "get", 200)
    _validate(api.get("/v1/tool/alpha/quotas").json(), f"{t}/quotas", "get", 200)
    _validate(api.delete(f"{JOBS}/hello").json(), f"{t}/jobs/{{name}}", "delete", 200)
    _validate(h.ops().get("/v1/healthz").json(), "/v1/healthz", "get", 200)


def test_error_answers_are_as_documented(h: Harness) -> None:
    api = h.tls()
    t = "/v1/tool/{tool}"
    missing = api.get(f"{JOBS}/nope")
    assert missing.status == 404
    _validate(missing.json(), f"{t}/jobs/{{name}}", "get", 404)
    invalid = api.post(JOBS, json_body={"name": "x", "cmd": "x", "imagename": "x", "retry": 9})
    assert invalid.status == 400
    assert invalid.json()["problems"]
    _validate(invalid.json(), f"{t}/jobs", "post", 400)
    other_tool = api.get("/v1/tool/beta/jobs")
    assert other_tool.status == 403
    _validate(other_tool.json(), f"{t}/jobs", "get", 403)
    legacy_missing = api.get("/api/v1/show/nope")
    _validate(legacy_missing.json(), "/api/v1/show/{name}", "get", 404)


def test_legacy_answers_are_as_documented(h: Harness) -> None:
    api = h.tls()
    created = api.post("/api/v1/run", body=b"name=hello&cmd=echo&imagename=bookworm&"
                       b"filelog=true&memory=1Gi",
                       content_type="application/x-www-form-urlencoded")
    assert created.status == 201, created.body
    _validate(created.json(), "/api/v1/run", "post", 201)
    _validate(api.get("/api/v1/list").json(), "/api/v1/list", "get", 200)
    _validate(api.get("/api/v1/show/hello").json(), "/api/v1/show/{name}", "get", 200)
    _validate(api.get("/api/v1/images").json(), "/api/v1/images", "get", 200)
    _validate(api.get("/api/v1/quota").json(), "/api/v1/quota", "get", 200)
    _validate(api.delete("/api/v1/flush").json(), "/api/v1/flush", "delete", 200)


def test_the_document_is_served_to_anyone_as_built(h: Harness) -> None:
    for client in (h.ops(), h.tls(), h.trusted(dn=None)):
        reply = client.get("/openapi.json")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.json() == DOC


def test_docs_api_md_has_the_generated_tables() -> None:
    text = API_DOC.read_text()
    match = re.search(r"<!-- generated:begin -->\n(.*?)<!-- generated:end -->", text, re.S)
    assert match is not None, "docs/api.md lost its generated:begin/end markers"
    assert match.group(1) == api_tables_markdown(), (
        "docs/api.md is out of date: paste `python -m tjf_http.openapi --markdown` between "
        "its generated markers")


def test_docs_api_md_describes_every_job_field_and_shape() -> None:
    text = API_DOC.read_text()
    for name in [*JOB_FIELD_SCHEMAS, *SHAPES]:
        assert f"`{name}`" in text, name
