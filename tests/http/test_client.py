"""JobsClient against the live TLS server: every operation, errors, logs, certificates."""

from __future__ import annotations

import base64
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.http.conftest import Harness
from tjf_core import errors
from tjf_core.errors import (
    AlreadyExistsError,
    AuthenticationError,
    CertificateError,
    ConfigurationError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    NotRestartableError,
    Problem,
    QuotaExceededError,
    RuntimeUnavailableError,
    TjfError,
)
from tjf_core.model import JobSpec
from tjf_http.auth import ListenerKind
from tjf_http.client import (
    ClientCertificate,
    JobsClient,
    certificate_from_kubeconfig,
    error_from_answer,
    error_type,
)
from tjf_http.state import CALLS

HELLO = JobSpec(name="hello", command="echo hi", image="bookworm")
CRON = JobSpec(name="cron", command="./tick", image="bookworm", schedule="@daily")
WEB = JobSpec(name="web", command="./serve", image="bookworm", kind="continuous", port=8000)


def url_of(h: Harness) -> str:
    address = h.server.addresses[ListenerKind.DIRECT][0]
    assert isinstance(address, tuple)
    return f"https://127.0.0.1:{address[1]}"


@pytest.fixture
def client(h: Harness) -> Iterator[JobsClient]:
    certificate = ClientCertificate.from_files(h.pki.alpha.cert, h.pki.alpha.key)
    with JobsClient(url_of(h), certificate=certificate, ca_file=h.pki.ca) as jobs:
        yield jobs


def _eventually(what: str, check: object, *, timeout: float = 5.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


# --- the operations --------------------------------------------------------------------------


def test_the_tool_is_the_certificates_cn(client: JobsClient) -> None:
    assert client.tool == "alpha"


def test_run_get_and_list_give_back_the_specs(client: JobsClient) -> None:
    for spec in (HELLO, CRON, WEB):
        created = client.run(spec)
        assert created.spec == spec
        assert created.status["short"] == "pending"
        assert created.image_state == "stable"
    assert client.get("cron").spec == CRON
    assert client.get("cron").schedule_actual is not None
    listed = client.list()
    assert [job.spec for job in listed.jobs] == [CRON, HELLO, WEB]
    assert listed.warnings == ()
    assert all(job.status_short and job.status_long for job in listed.jobs)


def test_upsert_says_whether_it_changed(client: JobsClient) -> None:
    job, changed = client.upsert(WEB)
    assert (job.spec, changed) == (WEB, True)
    assert client.upsert(WEB)[1] is False
    moved = JobSpec(name="web", command="./serve --fast", image="bookworm", kind="continuous")
    job, changed = client.upsert(moved)
    assert (job.spec, changed) == (moved, True)


def test_restart_delete_and_flush(h: Harness, client: JobsClient) -> None:
    client.run(WEB)
    client.run(CRON)
    client.restart("web")
    client.restart("cron")
    client.delete("web")
    assert [job.spec.name for job in client.list().jobs] == ["cron"]
    client.flush()
    assert client.list().jobs == ()


def test_apply_specs_and_jobs_files_with_dry_run(client: JobsClient) -> None:
    client.run(HELLO)
    plan = client.apply([CRON, WEB], dry_run=True)
    assert plan["dry_run"] is True
    assert {job["name"]: job["action"] for job in plan["jobs"]} == {
        "cron": "create", "web": "create", "hello": "delete"}
    assert [job.spec.name for job in client.list().jobs] == ["hello"]  # nothing happened
    plan = client.apply("- {name: cron, command: ./tick, image: bookworm, schedule: '@daily'}\n")
    assert plan["counts"] == {"create": 1, "update": 0, "delete": 1, "unchanged": 0}
    assert [job.spec for job in client.list().jobs] == [CRON]
    only = client.apply([WEB], only="web")
    assert only["counts"]["create"] == 1
    assert [job.spec.name for job in client.list().jobs] == ["cron", "web"]


def test_images_and_quota(client: JobsClient) -> None:
    images = client.images()
    assert {"shortname", "image"} == set(images[0])
    assert "bookworm" in {image["shortname"] for image in images}
    categories = client.quota()
    assert all({"name", "items"} == set(category) for category in categories)


# --- logs ------------------------------------------------------------------------------------


def test_logs_all_and_the_last_lines(h: Harness, client: JobsClient) -> None:
    client.run(HELLO)
    (h.homes / "alpha" / "hello.out").write_text("one\ntwo\nthree\n")
    assert list(client.logs("hello")) == ["one", "two", "three"]
    assert list(client.logs("hello", lines=2)) == ["two", "three"]


def test_following_streams_until_the_job_ends(h: Harness, client: JobsClient) -> None:
    client.run(HELLO)
    driver = h.driver()
    [pod] = driver.pods_of("hello")
    driver.set_running(pod)
    out = h.homes / "alpha" / "hello.out"
    out.write_text("start\n")
    stream = client.logs("hello", follow=True)
    assert next(stream) == "start"
    with out.open("a") as file:
        file.write("more\n")
    assert next(stream) == "more"
    driver.set_succeeded(pod)
    assert list(stream) == []  # the stream ended by itself


def test_closing_a_followed_stream_frees_the_servers_follower(h: Harness,
                                                             client: JobsClient) -> None:
    client.run(WEB)
    (h.homes / "alpha" / "web.out").write_text("up\n")
    calls = h.server.app[CALLS]
    with client.logs("web", follow=True) as stream:
        assert next(stream) == "up"
        assert calls.followers == 1
    _eventually("the follower noticed", lambda: calls.followers == 0)


def test_logs_of_a_missing_job_raise_before_any_line(client: JobsClient) -> None:
    with pytest.raises(NotFoundError):
        client.logs("nope", follow=True)


# --- errors ----------------------------------------------------------------------------------


def test_a_missing_job_is_not_found_with_the_servers_message(client: JobsClient) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.get("nope")
    assert str(raised.value) == "job 'nope' does not exist"
    assert raised.value.http_status == 404
    assert any(note.startswith("request id: ") for note in raised.value.__notes__)


def test_a_taken_name_is_already_exists(client: JobsClient) -> None:
    client.run(WEB)
    with pytest.raises(AlreadyExistsError, match="already exists") as raised:
        client.run(WEB)
    assert raised.value.http_status == 409


def test_a_quota_refusal_is_quota_exceeded(h: Harness, client: JobsClient) -> None:
    h.runtime.fail_next("create", QuotaExceededError("out of quota for pods in quota tool-alpha"))
    with pytest.raises(QuotaExceededError, match="out of quota for pods"):
        client.run(HELLO)


def test_invalid_input_carries_the_servers_problems(client: JobsClient) -> None:
    with pytest.raises(InvalidInputError) as raised:
        client.apply("- {name: a, command: x, image: bookworm, retry: 9}\n"
                     "- {name: b, command: x, image: bookworm, emails: often}\n")
    assert raised.value.http_status == 400
    assert [problem.path for problem in raised.value.problems] == ["a.retry", "b.emails"]
    assert "9 is not allowed" in raised.value.problems[0].message


def test_a_one_off_job_is_not_restartable(client: JobsClient) -> None:
    client.run(HELLO)
    with pytest.raises(NotRestartableError, match="one-off"):
        client.restart("hello")


def test_another_tools_jobs_are_forbidden(h: Harness) -> None:
    certificate = ClientCertificate.from_files(h.pki.alpha.cert, h.pki.alpha.key)
    with JobsClient(url_of(h), certificate=certificate, tool="beta", ca_file=h.pki.ca) as beta, \
            pytest.raises(ForbiddenError, match="not the authenticated tool 'alpha'"):
        beta.list()


def test_an_unavailable_cluster_is_unavailable_with_retry_after(h: Harness,
                                                                client: JobsClient) -> None:
    h.runtime.fail_next("list_objects", RuntimeUnavailableError("the cluster is away"))
    with pytest.raises(RuntimeUnavailableError, match="the cluster is away") as raised:
        client.list()
    assert "the server asks to retry after 7 s" in raised.value.__notes__


def test_without_a_certificate_the_tls_handshake_refuses(h: Harness) -> None:
    with JobsClient(url_of(h), certificate=None, tool="alpha", ca_file=h.pki.ca) as anonymous, \
            pytest.raises(AuthenticationError, match=f"{url_of(h)} wants a client certificate"):
        anonymous.list()


def test_a_certificate_of_another_ca_is_refused(h: Harness) -> None:
    foreign = ClientCertificate.from_files(h.pki.foreign.cert, h.pki.foreign.key)
    with JobsClient(url_of(h), certificate=foreign, ca_file=h.pki.ca) as client, \
            pytest.raises(CertificateError, match="refused the client certificate"):
        client.list()


def test_a_certificate_the_server_refuses_is_a_401(h: Harness) -> None:
    wrong_org = ClientCertificate.from_files(h.pki.wrong_org.cert, h.pki.wrong_org.key)
    with JobsClient(url_of(h), certificate=wrong_org, ca_file=h.pki.ca) as client, \
            pytest.raises(AuthenticationError) as raised:
        client.list()
    assert raised.value.http_status == 401


@pytest.mark.parametrize("trusting", ["other CA", "system store"])
def test_a_server_no_trusted_ca_signed_is_refused(h: Harness, trusting: str) -> None:
    ca_file = h.pki.foreign.cert.parent / "other-ca.crt" if trusting == "other CA" else None
    certificate = ClientCertificate.from_files(h.pki.alpha.cert, h.pki.alpha.key)
    calls_before = sum(h.runtime.calls.values())
    with JobsClient(url_of(h), certificate=certificate, ca_file=ca_file) as client, \
            pytest.raises(ConfigurationError, match="refusing to talk to it"):
        client.list()
    assert sum(h.runtime.calls.values()) == calls_before


def test_an_unreachable_server_is_unavailable_naming_the_url(h: Harness) -> None:
    url = url_of(h)
    h.stop()
    certificate = ClientCertificate.from_files(h.pki.alpha.cert, h.pki.alpha.key)
    with JobsClient(url, certificate=certificate, ca_file=h.pki.ca) as client, \
            pytest.raises(RuntimeUnavailableError, match=f"cannot reach the jobs API at {url}"):
        client.images()


def test_a_kept_connection_the_server_closed_is_reopened(h: Harness, client: JobsClient) -> None:
    assert client.images()
    conn = client._conn
    assert conn is not None
    assert conn.sock is not None
    conn.sock.shutdown(socket.SHUT_RDWR)  # as if the server had dropped the idle connection
    assert client.images()
    assert client._conn is not conn


@pytest.mark.parametrize("url", ["http://localhost:8000", "localhost", "https://", "https://h:x"])
def test_only_https_urls_are_taken(url: str) -> None:
    with pytest.raises(ConfigurationError, match="use https://"):
        JobsClient(url, certificate=None, tool="alpha")


def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ca_file"):
        JobsClient("https://localhost", certificate=None, tool="x", ca_file=tmp_path / "no")


# --- kubeconfig ------------------------------------------------------------------------------


def _kubeconfig(path: Path, *, current: str | None = "tool", contexts: dict[str, str] | None = None,
                users: dict[str, dict[str, str]] | None = None) -> Path:
    document: dict[str, object] = {
        "apiVersion": "v1", "kind": "Config",
        "contexts": [{"name": name, "context": {"cluster": "k8s", "user": user}}
                     for name, user in (contexts or {}).items()],
        "users": [{"name": name, "user": user} for name, user in (users or {}).items()],
    }
    if current is not None:
        document["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def _copy_certificate(h: Harness, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(h.pki.alpha.cert, directory / "client.crt")
    shutil.copy(h.pki.alpha.key, directory / "client.key")


def test_kubeconfig_files_are_relative_to_the_kubeconfig(h: Harness, tmp_path: Path) -> None:
    _copy_certificate(h, tmp_path / "kube" / "certs")
    config = _kubeconfig(tmp_path / "kube" / "config", contexts={"tool": "tf-alpha"},
                         users={"tf-alpha": {"client-certificate": "certs/client.crt",
                                             "client-key": "certs/client.key"}})
    certificate = certificate_from_kubeconfig(config)
    assert certificate.cert == tmp_path / "kube" / "certs" / "client.crt"
    assert certificate.source == f"kubeconfig {str(config)!r}, user 'tf-alpha'"
    with JobsClient.from_kubeconfig(url_of(h), kubeconfig=config, ca_file=h.pki.ca) as client:
        assert client.tool == "alpha"
        assert client.list().jobs == ()


def test_kubeconfig_embedded_data_is_used_and_wins(h: Harness, tmp_path: Path) -> None:
    def encoded(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = _kubeconfig(tmp_path / "config", contexts={"tool": "tf-alpha"}, users={
        "tf-alpha": {"client-certificate-data": encoded(h.pki.alpha.cert),
                     "client-key-data": encoded(h.pki.alpha.key),
                     "client-certificate": "/nowhere.crt"}})
    certificate = certificate_from_kubeconfig(config)
    assert certificate.cert == h.pki.alpha.cert.read_bytes()
    with JobsClient.from_kubeconfig(url_of(h), kubeconfig=config, ca_file=h.pki.ca) as client:
        assert client.run(HELLO).spec == HELLO


def test_kubeconfig_lists_merge_first_definition_wins(tmp_path: Path) -> None:
    first = _kubeconfig(tmp_path / "a" / "config", current="other",
                        contexts={"other": "u1", "mine": "u2"})
    second = _kubeconfig(tmp_path / "b" / "config", current="mine", contexts={"mine": "u1"},
                         users={"u1": {"client-certificate": "c1", "client-key": "k1"},
                                "u2": {"client-certificate": "c2", "client-key": "k2"}})
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}"}
    chosen = certificate_from_kubeconfig(environ=environ, home=tmp_path)
    assert (chosen.cert, chosen.key) == (tmp_path / "b" / "c1", tmp_path / "b" / "k1")
    named = certificate_from_kubeconfig(context="mine", environ=environ, home=tmp_path)
    assert named.cert == tmp_path / "b" / "c2"


def test_without_kubeconfig_variable_the_homes_config_is_read(tmp_path: Path) -> None:
    _kubeconfig(tmp_path / ".kube" / "config", contexts={"tool": "me"},
                users={"me": {"client-certificate": "/abs/c", "client-key": "k"}})
    found = certificate_from_kubeconfig(environ={}, home=tmp_path)
    assert (found.cert, found.key) == (Path("/abs/c"), tmp_path / ".kube" / "k")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"current": None, "contexts": {"tool": "me"}}, "has no current-context"),
    ({"contexts": {"elsewhere": "me"}}, "context 'tool' is not defined; defined: elsewhere"),
    ({"contexts": {"tool": "ghost"}}, "the user 'ghost' of context 'tool' is not defined"),
    ({"contexts": {"tool": "me"}, "users": {"me": {"client-certificate": "c"}}},
     "has no client-key (nor client-key-data)"),
    ({"contexts": {"tool": "me"}, "users": {"me": {"client-certificate-data": "%%%",
                                                   "client-key": "k"}}},
     "client-certificate-data is not base64"),
])
def test_kubeconfig_problems_are_named(tmp_path: Path, kwargs: dict[str, Any],
                                       message: str) -> None:
    config = _kubeconfig(tmp_path / "config", **kwargs)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        certificate_from_kubeconfig(config)


@pytest.mark.parametrize(("text", "message"), [
    ("users: [", "is not valid YAML"), ("- a\n- b\n", "is not a mapping")])
def test_unreadable_kubeconfigs_are_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        certificate_from_kubeconfig(config)


def test_no_kubeconfig_at_all_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no kubeconfig found .*missing"):
        certificate_from_kubeconfig(environ={"KUBECONFIG": str(tmp_path / "missing")},
                                    home=tmp_path)


# --- error_from_answer -----------------------------------------------------------------------


def test_answers_of_every_shape_become_core_errors() -> None:
    url = "https://api"
    legacy = error_from_answer(404, b'{"error": "job \'x\' does not exist", "request_id": "r"}',
                               url=url)
    assert isinstance(legacy, NotFoundError)
    assert str(legacy) == "job 'x' does not exist"
    assert legacy.__notes__ == ["request id: r"]
    proxy = error_from_answer(502, b"<html>Bad Gateway</html>", url=url)
    assert isinstance(proxy, RuntimeUnavailableError)
    assert str(proxy) == "the jobs API at https://api answered HTTP 502"
    teapot = error_from_answer(415, b'{"messages": {"error": ["use application/json"]}}', url=url)
    assert type(teapot) is TjfError
    assert teapot.http_status == 415


def test_a_summary_line_survives_the_round_trip() -> None:
    original = InvalidInputError([Problem("retry", "9 is too many")], summary="job 'a'")
    body = ('{"messages": {"error": ["job \'a\'", "retry: 9 is too many"]}, '
            '"problems": [{"field": "retry", "message": "9 is too many"}], "request_id": "r"}')
    again = error_from_answer(400, body.encode(), url="https://api")
    assert isinstance(again, InvalidInputError)
    assert (str(again), again.problems) == (str(original), original.problems)


def test_the_body_type_names_the_error_class() -> None:
    url = "https://api"
    # The type wins over the status: a 409 that is a quota refusal without the word "quota".
    quota = error_from_answer(409, b'{"type": "quota_exceeded", "messages": {"error": '
                              b'["too many jobs"]}}', url=url)
    assert type(quota) is QuotaExceededError
    assert (str(quota), quota.http_status) == ("too many jobs", 409)
    limits = error_from_answer(400, b'{"type": "limit_exceeded", "messages": {"error": ["mem: '
                               b'8Gi is too much"]}, "problems": [{"field": "mem", "message": '
                               b'"8Gi is too much"}]}', url=url)
    assert type(limits) is errors.LimitExceededError
    assert limits.problems == (Problem("mem", "8Gi is too much"),)
    restart = error_from_answer(400, b'{"type": "not_restartable", "messages": {"error": '
                                b'["one-off jobs cannot be restarted"]}}', url=url)
    assert type(restart) is NotRestartableError
    legacy = error_from_answer(404, b'{"error": "no such job", "type": "not_found"}', url=url)
    assert type(legacy) is NotFoundError


def test_an_unknown_type_falls_back_to_the_status() -> None:
    answer = b'{"type": "from_the_future", "messages": {"error": ["gone"]}}'
    assert type(error_from_answer(404, answer, url="https://api")) is NotFoundError
    assert type(error_from_answer(503, answer, url="https://api")) is RuntimeUnavailableError


def test_every_core_error_round_trips_through_its_type() -> None:
    for name in errors.__all__:
        kind = getattr(errors, name)
        if not (isinstance(kind, type) and issubclass(kind, TjfError)):
            continue
        body = (f'{{"type": "{error_type(kind)}", "messages": {{"error": ["why"]}}}}').encode()
        again = error_from_answer(kind.http_status, body, url="https://api")
        assert type(again) is kind, name
        assert str(again) == "why"
    assert error_type(errors.RuntimeUnavailableError) == "runtime_unavailable"
    assert error_type(errors.InvalidInputError) == "invalid_input"


# --- import cost -----------------------------------------------------------------------------


def test_importing_the_client_stays_cheap() -> None:
    heavy = {"aiohttp", "kubernetes", "urllib3", "yaml", "cattrs", "cryptography", "ssl",
             "http", "tjf_http.app"}
    code = ("import sys, tjf_http.client; print(' '.join(sorted(m for m in sys.modules "
            f"if m in {heavy!r} or m.split('.')[0] in {heavy!r})))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert found == []
