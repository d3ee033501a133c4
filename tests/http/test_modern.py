"""The modern routes over real TLS: shapes and status codes of every route."""

from __future__ import annotations

import json

from tests.http.conftest import Harness
from tjf_core.model import JobSpec

JOBS = "/v1/tool/alpha/jobs"
HELLO = {"name": "hello", "cmd": "echo hi", "imagename": "bookworm"}
EMPTY: dict[str, list[str]] = {"info": [], "warning": [], "error": []}


def test_create_then_list_and_get(h: Harness) -> None:
    api = h.tls()
    created = api.post(JOBS, json_body=HELLO)
    assert created.status == 201
    body = created.json()
    assert body["job"]["name"] == "hello"
    assert body["job"]["command"] == "echo hi"
    assert body["job"]["status"]["short"] == "pending"
    assert body["messages"] == {"info": ["job 'hello' created"], "warning": [], "error": []}
    listed = api.get(JOBS)
    assert listed.status == 200
    assert [job["name"] for job in listed.json()["jobs"]] == ["hello"]
    assert listed.json()["messages"] == EMPTY
    one = api.get(f"{JOBS}/hello/")  # trailing slashes are optional
    assert one.status == 200
    assert one.json()["job"] == listed.json()["jobs"][0]


def test_create_a_taken_name_is_409(h: Harness) -> None:
    api = h.tls()
    api.post(JOBS, json_body={**HELLO, "continuous": True})
    again = api.post(JOBS, json_body={**HELLO, "continuous": True})
    assert again.status == 409
    assert again.errors == ["a job named 'hello' already exists"]


def test_invalid_jobs_name_every_field(h: Harness) -> None:
    reply = h.tls().post(JOBS, json_body={"name": "Bad_Name", "cmd": "x", "imagename": "bookworm",
                                          "retry": 9, "emails": "often"})
    assert reply.status == 400
    fields = {problem["field"] for problem in reply.json()["problems"]}
    assert fields == {"name", "retry", "emails"}
    assert any(line.startswith("retry: 9 is not allowed") for line in reply.errors)
    assert reply.json()["request_id"] == reply.headers["X-Request-Id"]


def test_an_unknown_image_is_400(h: Harness) -> None:
    reply = h.tls().post(JOBS, json_body={**HELLO, "imagename": "cobol85"})
    assert reply.status == 400
    assert "cobol85" in reply.errors[0]


def test_upsert_creates_leaves_alone_and_updates(h: Harness) -> None:
    api = h.tls()
    first = api.request("PATCH", JOBS, json_body={**HELLO, "continuous": True})
    assert first.status == 200
    assert first.json()["job_changed"] is True
    same = api.request("PATCH", JOBS, json_body={**HELLO, "continuous": True})
    assert same.json()["job_changed"] is False
    assert same.json()["messages"]["info"] == ["job 'hello' is unchanged"]
    changed = api.request("PATCH", JOBS, json_body={**HELLO, "continuous": True, "cmd": "./x"})
    assert changed.json()["job_changed"] is True
    assert changed.json()["job"]["command"] == "./x"


def test_delete_one_and_flush(h: Harness) -> None:
    api = h.tls()
    for name in ("a", "b", "c"):
        assert api.post(JOBS, json_body={**HELLO, "name": name}).status == 201
    deleted = api.delete(f"{JOBS}/a")
    assert deleted.status == 200
    assert deleted.json() == {"messages": {"info": ["job 'a' was deleted"], "warning": [],
                                           "error": []}}
    assert api.delete(f"{JOBS}/a").status == 404
    assert api.delete(JOBS).status == 200
    assert api.get(JOBS).json()["jobs"] == []


def test_unknown_job_is_404(h: Harness) -> None:
    reply = h.tls().get(f"{JOBS}/ghost")
    assert reply.status == 404
    assert reply.errors == ["job 'ghost' does not exist"]


def test_restart(h: Harness) -> None:
    api = h.tls()
    api.post(JOBS, json_body={**HELLO, "name": "web", "continuous": True})
    api.post(JOBS, json_body=HELLO)
    assert api.post(f"{JOBS}/web/restart").json()["messages"]["info"] == [
        "job 'web' was restarted"]
    one_off = api.post(f"{JOBS}/hello/restart")
    assert one_off.status == 400
    assert "cannot be restarted" in one_off.errors[0]


def test_logs_of_a_job(h: Harness) -> None:
    h.service.run(h.tool(), JobSpec(name="talk", command="x", image="bookworm"))
    (h.homes / "alpha" / "talk.out").write_text("one\ntwo\nthree\n")
    api = h.tls()
    reply = api.get(f"{JOBS}/talk/logs")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.body == b"one\ntwo\nthree\n"
    assert api.get(f"{JOBS}/talk/logs?lines=2").body == b"two\nthree\n"
    bad = api.get(f"{JOBS}/talk/logs?lines=none")
    assert bad.status == 400
    assert bad.json()["problems"][0]["field"] == "lines"
    assert api.get(f"{JOBS}/ghost/logs").status == 404


def test_apply_a_yaml_jobs_file(h: Harness) -> None:
    api = h.tls()
    api.post(JOBS, json_body={**HELLO, "name": "old"})
    jobs_file = (b"- name: web\n  command: ./serve\n  image: bookworm\n  continuous: true\n"
                 b"- name: daily\n  command: ./run\n  image: bookworm\n  schedule: '@daily'\n")
    dry = api.post("/v1/tool/alpha/apply?dry_run=true", body=jobs_file,
                   content_type="application/yaml")
    assert dry.status == 200
    plan = dry.json()["plan"]
    assert plan["dry_run"] is True
    assert {(j["name"], j["action"]) for j in plan["jobs"]} == {
        ("old", "delete"), ("web", "create"), ("daily", "create")}
    assert [j["name"] for j in api.get(JOBS).json()["jobs"]] == ["old"]  # nothing changed
    done = api.post("/v1/tool/alpha/apply", body=jobs_file, content_type="application/yaml")
    assert done.json()["plan"]["counts"] == {"create": 2, "update": 0, "delete": 1,
                                             "unchanged": 0}
    assert [j["name"] for j in api.get(JOBS).json()["jobs"]] == ["daily", "web"]


def test_apply_a_json_list_refuses_everything_if_one_is_bad(h: Harness) -> None:
    api = h.tls()
    api.post(JOBS, json_body={**HELLO, "name": "keep"})
    reply = api.post("/v1/tool/alpha/apply", json_body=[
        {"name": "ok", "cmd": "x", "imagename": "bookworm"},
        {"name": "bad", "cmd": "x", "imagename": "bookworm", "retry": 7},
    ])
    assert reply.status == 400
    assert [p["field"] for p in reply.json()["problems"]] == ["bad.retry"]
    assert [j["name"] for j in api.get(JOBS).json()["jobs"]] == ["keep"]


def test_apply_only_one_job(h: Harness) -> None:
    api = h.tls()
    api.post(JOBS, json_body={**HELLO, "name": "keep"})
    reply = api.post("/v1/tool/alpha/apply?job=new", json_body=[
        {"name": "new", "cmd": "x", "imagename": "bookworm"}])
    assert [j["action"] for j in reply.json()["plan"]["jobs"]] == ["create"]
    assert [j["name"] for j in api.get(JOBS).json()["jobs"]] == ["keep", "new"]


def test_images_and_quotas(h: Harness) -> None:
    api = h.tls()
    images = api.get("/v1/tool/alpha/images").json()["images"]
    assert images == sorted(images, key=lambda i: i["shortname"])
    assert {"shortname", "image"} == set(images[0])
    quota = api.get("/v1/tool/alpha/quotas/")
    assert quota.status == 200
    names = [c["name"] for c in quota.json()["quota"]["categories"]]
    assert names == ["Running jobs", "Per-job limits", "Job definitions"]


def test_health_and_metrics_on_every_listener(h: Harness) -> None:
    for api in (h.tls(), h.trusted(dn=None), h.ops()):
        health = api.get("/v1/healthz")
        assert health.status == 200
        assert health.json() == {"status": "ok", "messages": EMPTY}
    h.tls().get(JOBS)
    metrics = h.ops().get("/metrics")
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.body.decode()
    assert ('tjf_http_requests_total{method="GET",route="/v1/tool/{tool}/jobs",status="200"} 1.0'
            in text)
    assert "tjf_http_request_duration_seconds_bucket" in text


def test_every_json_answer_has_messages_and_a_request_id(h: Harness) -> None:
    api = h.tls()
    for reply in (api.get(JOBS), api.get(f"{JOBS}/ghost"), api.get("/v1/nothing/here")):
        assert set(reply.json()["messages"]) == {"info", "warning", "error"}
        assert len(reply.headers["X-Request-Id"]) == 32
    assert json.loads(api.get(JOBS).body)["messages"] == EMPTY
