"""The seed's routes and the 2023 client's: bare answers, forms, ``{"error": …}``."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.http.conftest import Harness
from tjf_core.model import JobSpec

FORM = "application/x-www-form-urlencoded"


def _form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def test_run_from_a_form_as_the_seed_client_posts_it(h: Harness) -> None:
    api = h.tls()
    reply = api.post("/api/v1/run/", content_type=FORM, body=_form(
        name="bot", cmd="./bot.sh", imagename="bookworm", continuous="true", filelog="true",
        emails="onfailure", retry="0", memory="1Gi"))
    assert reply.status == 201
    job = reply.json()
    assert job["name"] == "bot"
    assert job["cmd"] == "./bot.sh"
    assert job["continuous"] is True
    assert job["filelog"] == "True"
    assert job["memory"] == "1Gi"
    assert "cpu" not in job  # the default
    assert job["emails"] == "onfailure"


def test_filelog_is_opt_in_for_old_clients(h: Harness) -> None:
    api = h.tls()
    api.post("/api/v1/run", content_type=FORM,
             body=_form(name="quiet", cmd="x", imagename="bookworm"))
    assert h.service.get(h.tool(), "quiet").spec.filelog is False
    assert api.get("/api/v1/show/quiet/").json()["filelog"] == "False"


def test_the_2023_json_routes(h: Harness) -> None:
    api = h.tls()
    created = api.post("/api/v1/jobs/", json_body={
        "name": "daily", "cmd": "./run", "imagename": "bookworm", "schedule": "@daily",
        "filelog": "true", "retry": 2})
    assert created.status == 201
    job = created.json()
    assert job["schedule"] == "@daily"
    assert job["schedule_actual"] != "@daily"
    assert job["retry"] == 2
    assert [j["name"] for j in api.get("/api/v1/jobs").json()] == ["daily"]
    assert api.get("/api/v1/jobs/daily").json()["name"] == "daily"
    assert api.post("/api/v1/jobs/daily/restart").json() == {}
    assert api.delete("/api/v1/jobs/daily/").json() == {}
    assert api.get("/api/v1/jobs/").json() == []


@pytest.mark.parametrize("path", ["/api/v1/list/", "/api/v1/list", "/api/v1/jobs/"])
def test_listing_is_a_bare_list(h: Harness, path: str) -> None:
    h.service.run(h.tool(), JobSpec(name="one", command="x", image="bookworm"))
    listed = h.tls().get(path).json()
    assert isinstance(listed, list)
    assert set(listed[0]) >= {"name", "cmd", "image", "image_state", "filelog",
                              "filelog_stdout", "filelog_stderr", "status_short",
                              "status_long", "emails", "retry", "schedule", "schedule_actual",
                              "continuous"}


def test_delete_and_flush(h: Harness) -> None:
    for name in ("a", "b"):
        h.service.run(h.tool(), JobSpec(name=name, command="x", image="bookworm"))
    api = h.tls()
    assert api.delete("/api/v1/delete/a").json() == {}
    missing = api.delete("/api/v1/delete/a")
    assert missing.status == 404
    assert missing.json()["error"] == "job 'a' does not exist"
    assert api.delete("/api/v1/flush/").status == 200
    assert api.get("/api/v1/list/").json() == []
    h.service.run(h.tool(), JobSpec(name="c", command="x", image="bookworm"))
    assert api.delete("/api/v1/jobs").status == 200
    assert api.get("/api/v1/list/").json() == []


@pytest.mark.parametrize("path", ["/api/v1/containers/", "/api/v1/images/", "/api/v1/images"])
def test_images(h: Harness, path: str) -> None:
    images = h.tls().get(path).json()
    assert isinstance(images, list)
    assert set(images[0]) == {"shortname", "image"}


def test_restart_and_quota(h: Harness) -> None:
    api = h.tls()
    h.service.run(h.tool(), JobSpec(name="web", command="x", image="bookworm",
                                    kind="continuous"))
    assert api.post("/api/v1/restart/web").status == 200
    assert api.post("/api/v1/restart/ghost").json()["error"] == "job 'ghost' does not exist"
    quota = api.get("/api/v1/quota/").json()
    assert [c["name"] for c in quota["categories"]] == ["Running jobs", "Per-job limits",
                                                       "Job definitions"]


def test_logs(h: Harness) -> None:
    h.service.run(h.tool(), JobSpec(name="talk", command="x", image="bookworm"))
    (h.homes / "alpha" / "talk.out").write_text("a\nb\n")
    reply = h.tls().get("/api/v1/jobs/talk/logs?lines=1")
    assert reply.body == b"b\n"


def test_legacy_errors_are_an_error_string(h: Harness) -> None:
    api = h.tls()
    invalid = api.post("/api/v1/run/", content_type=FORM,
                       body=_form(name="x", cmd="x", imagename="bookworm", retry="9"))
    assert invalid.status == 400
    assert invalid.json()["error"] == "retry: 9 is not allowed, use 0 to 5"
    assert invalid.json()["type"] == "invalid_job"
    taken = h.service.run(h.tool(), JobSpec(name="web", command="x", image="bookworm",
                                            kind="continuous"))
    assert taken.spec.name == "web"
    again = api.post("/api/v1/jobs", json_body={"name": "web", "cmd": "x",
                                                "imagename": "bookworm", "continuous": "true"})
    assert again.status == 409
    assert again.json() == {"error": "a job named 'web' already exists",
                            "type": "already_exists",
                            "request_id": again.headers["X-Request-Id"]}
    nowhere = api.get("/api/v1/nowhere")
    assert nowhere.status == 404
    assert set(nowhere.json()) == {"error", "type", "request_id"}
    assert nowhere.json()["type"] == "no_route"


def test_legacy_form_fields_given_twice_are_refused(h: Harness) -> None:
    reply = h.tls().post("/api/v1/run", content_type=FORM,
                         body=b"name=a&name=b&cmd=x&imagename=bookworm")
    assert reply.status == 400
    assert reply.json()["error"] == "name: is given more than once, give it once"


def test_the_tool_is_always_the_callers(h: Harness) -> None:
    h.service.run(h.tool("beta"), JobSpec(name="theirs", command="x", image="bookworm"))
    assert h.tls(h.pki.alpha).get("/api/v1/list").json() == []
    assert [j["name"] for j in h.tls(h.pki.beta).get("/api/v1/list").json()] == ["theirs"]
