"""Every failure is one ``Error:`` line on stderr with what to do, and the right exit code."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import ToolHome, api_url, write_kubeconfig
from tests.http.conftest import Harness
from tjf_core.errors import RuntimeUnavailableError


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in stderr
    return lines[0]


def test_an_unreachable_api_names_the_url_and_where_it_came_from(h: Harness,
                                                                 tool: ToolHome) -> None:
    url = api_url(h)
    h.stop()
    result = tool.invoke("list")
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith(f"Error: cannot reach the jobs API at {url}: ")
    assert f"it comes from api_gateway.url of the configuration file '{tool.xdg}/toolforge.yaml'" \
        in line
    by_variable = tool.invoke("list", session=tool.session(
        environ={**tool.environ, "TJF_API_URL": "https://127.0.0.1:9"}))
    assert "it comes from the environment variable TJF_API_URL" in by_variable.stderr


def test_a_missing_kubeconfig_says_to_become_the_tool(tool: ToolHome) -> None:
    shutil.rmtree(tool.home / ".kube")
    result = tool.invoke("list")
    assert result.exit_code == 1
    assert _one_error_line(result.stderr) == (
        f"Error: no kubeconfig found at {tool.home}/.kube/config: run it as the tool "
        "(`become TOOLNAME` first), or set KUBECONFIG to its kubeconfig")


def test_kubeconfig_comes_from_the_variable(h: Harness, tool: ToolHome, tmp_path: Path) -> None:
    elsewhere = write_kubeconfig(tmp_path / "other", h.pki.alpha)
    shutil.rmtree(tool.home / ".kube")
    session = tool.session(environ={**tool.environ, "KUBECONFIG": str(elsewhere)})
    assert tool.invoke("list", session=session).exit_code == 0


def test_an_embedded_certificate_works(h: Harness, tool: ToolHome) -> None:
    def encoded(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    tool.kubeconfig.write_text(yaml.safe_dump({
        "current-context": "t", "contexts": [{"name": "t", "context": {"user": "u"}}],
        "users": [{"name": "u", "user": {"client-certificate-data": encoded(h.pki.alpha.cert),
                                         "client-key-data": encoded(h.pki.alpha.key)}}]}))
    shutil.rmtree(tool.home / ".kube" / "certs")
    assert tool.invoke("list").exit_code == 0


def test_a_missing_certificate_file_is_named(tool: ToolHome) -> None:
    (tool.home / ".kube" / "certs" / "client.crt").unlink()
    result = tool.invoke("list")
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert f"the client certificate file '{tool.home}/.kube/certs/client.crt'" in line
    assert "does not exist" in line


def test_a_kubeconfig_without_a_certificate(tool: ToolHome) -> None:
    tool.kubeconfig.write_text(yaml.safe_dump({
        "current-context": "t", "contexts": [{"name": "t", "context": {"user": "u"}}],
        "users": [{"name": "u", "user": {"token": "abc"}}]}))
    result = tool.invoke("list")
    assert result.exit_code == 1
    assert "has no client-certificate" in _one_error_line(result.stderr)


def test_an_expired_certificate_says_so(h: Harness, tool: ToolHome) -> None:
    write_kubeconfig(tool.home / ".kube", h.pki.expired)
    result = tool.invoke("list")
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert "the tool's client certificate" in line
    assert " expired on " in line
    assert "renews it by itself" in line


def test_a_certificate_the_api_does_not_trust(h: Harness, tool: ToolHome) -> None:
    write_kubeconfig(tool.home / ".kube", h.pki.foreign)
    result = tool.invoke("list")
    assert result.exit_code == 1
    assert "refused the client certificate" in _one_error_line(result.stderr)


def test_a_server_no_trusted_ca_signed_is_refused(h: Harness, tool: ToolHome) -> None:
    tool.configure({"api_gateway": {"url": api_url(h),
                                    "ca_file": str(h.pki.foreign.cert.parent / "other-ca.crt")},
                    "jobs": {"jobs_endpoint": ""}})
    result = tool.invoke("list")
    assert result.exit_code == 1
    assert "refusing to talk to it" in _one_error_line(result.stderr)
    system_store = tool.session(environ={**tool.environ, "TJF_API_URL": api_url(h)})
    tool.configure({})
    assert "refusing to talk to it" in tool.invoke("list", session=system_store).stderr


def test_no_configured_api(tool: ToolHome) -> None:
    tool.configure({})
    result = tool.invoke("list")
    assert result.exit_code == 1
    assert _one_error_line(result.stderr) == (
        "Error: no jobs API is configured, and no local one runs here (no socket at "
        f"{tool.no_local_socket}): set api_gateway.url in ~/.toolforge.yaml (or "
        "/etc/toolforge/common.yaml), or the environment variable TJF_API_URL; or start "
        "`tjf-api` in local mode (or set TJF_LOCAL_SOCKET to its socket)")


def test_a_broken_configuration_file_says_where(tool: ToolHome) -> None:
    (tool.xdg / "toolforge.yaml").write_text("api_gateway:\n  url: [https://x\n")
    result = tool.invoke("list")
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert f"configuration file '{tool.xdg}/toolforge.yaml' is not valid YAML at line 3" in line


def test_a_wrong_type_in_the_configuration(tool: ToolHome, h: Harness) -> None:
    tool.configure({"api_gateway": {"url": api_url(h)}, "jobs": {"timeout": "soon"}})
    result = tool.invoke("list")
    assert result.exit_code == 1
    assert "jobs.timeout: 'soon' is not allowed, use a number of seconds above 0" in (
        _one_error_line(result.stderr))


def test_a_server_error_is_internal_and_quotes_the_request_id(h: Harness,
                                                             tool: ToolHome) -> None:
    h.runtime.fail_next("list_objects", RuntimeError("a bug"))
    result = tool.invoke("list")
    assert result.exit_code == 2
    assert "please report request id " in _one_error_line(result.stderr)


def test_an_unavailable_cluster_says_try_later(h: Harness, tool: ToolHome) -> None:
    h.runtime.fail_next("list_objects", RuntimeUnavailableError("the cluster is away"))
    result = tool.invoke("list")
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith("Error: the cluster is away; try again later")
    assert "retry after 7 s" in line


def test_a_bug_in_the_client_is_internal(tool: ToolHome, monkeypatch: pytest.MonkeyPatch) -> None:
    session = tool.session()

    def broken(**_: object) -> None:
        raise ValueError("oops")

    monkeypatch.setattr(session, "backend", broken)
    result = tool.invoke("list", session=session)
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == (
        "Error: internal error (ValueError: oops); run with --debug for the details, and please "
        "report it")


@pytest.mark.parametrize("how", ["flag before", "flag after", "variable"])
def test_debug_shows_the_traceback(tool: ToolHome, how: str) -> None:
    shutil.rmtree(tool.home / ".kube")
    if how == "variable":
        session = tool.session(environ={**tool.environ, "TOOLFORGE_DEBUG": "1"})
        result = tool.invoke("list", session=session)
    else:
        args = ("--debug", "list") if how == "flag before" else ("list", "--debug")
        result = tool.invoke(*args)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: no kubeconfig found")


# --- real processes ----------------------------------------------------------------------------


def test_real_processes_exit_with_the_documented_codes(h: Harness, tool: ToolHome) -> None:
    assert tool.run_process("list").returncode == 0
    missing = tool.run_process("show", "nope")
    assert (missing.returncode, missing.stderr.splitlines()[0]) == (
        1, "Error: job 'nope' does not exist; see `toolforge-jobs list` for the tool's jobs")
    usage = tool.run_process("run", "x")
    assert usage.returncode == 2
    assert "Missing option '--command'" in usage.stderr
    unknown = tool.run_process("frobnicate")
    assert unknown.returncode == 2
    no_kubeconfig = tool.run_process("list", env={"KUBECONFIG": str(tool.home / "none")})
    assert no_kubeconfig.returncode == 1
    assert "Traceback" not in no_kubeconfig.stderr
    h.stop()
    unreachable = tool.run_process("list")
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("Error: cannot reach the jobs API")
    assert len(unreachable.stderr.splitlines()) == 1


def test_debug_says_which_api_and_configuration(h: Harness, tool: ToolHome) -> None:
    result = tool.invoke("list", "--debug")
    assert result.exit_code == 0
    assert f"debug: jobs API: {api_url(h)} (from api_gateway.url of the configuration file" in (
        result.stderr)
    assert "tool alpha" in result.stderr
