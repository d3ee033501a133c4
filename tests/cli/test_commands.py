"""run, show, list, logs, restart, delete, flush, images and quota against the live API."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.cli.conftest import ToolHome
from tests.http.conftest import Harness
from tjf_core.model import HealthCheck, JobKind, JobSpec

HELLO = ("run", "hello", "--command", "echo hi", "--image", "bookworm")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_run_creates_the_job_the_flags_describe(h: Harness, tool: ToolHome) -> None:
    result = tool.invoke(
        "run", "web", "--command", "./serve --port $PORT", "--image", "python3.11",
        "--continuous", "--replicas", "2", "--port", "8000", "--health-check-path", "/healthz",
        "--mem", "1Gi", "--cpu", "250m", "--emails", "onfailure", "--mount", "none",
        "-o", "logs/web.out", "-e", "logs/web.err")
    assert result.exit_code == 0, result.stderr
    assert "Created job 'web'" in result.stdout
    assert result.stdout == "Created job 'web'; see it with `toolforge-jobs show web`.\n"
    job = h.service.get(h.tool(), "web")
    assert job.spec == JobSpec(
        name="web", command="./serve --port $PORT", image="python3.11", kind="continuous",
        replicas=2, port=8000, health_check=HealthCheck(type="http", path="/healthz"),
        memory="1Gi", cpu="250m", emails="onfailure", mount="none",
        filelog_stdout="logs/web.out", filelog_stderr="logs/web.err")


def test_run_scheduled_and_without_filelog(h: Harness, tool: ToolHome) -> None:
    assert tool.invoke("run", "tick", "--command", "./tick", "--image", "bookworm",
                       "--schedule", "@daily", "--timezone", "Europe/Berlin",
                       "--concurrency", "replace", "--retry", "2", "--timeout", "60",
                       "--no-filelog").exit_code == 0
    spec = h.service.get(h.tool(), "tick").spec
    assert (spec.kind, spec.schedule, spec.timezone, spec.concurrency.value if
            spec.concurrency else None) == (JobKind.SCHEDULED, "@daily", "Europe/Berlin",
                                            "replace")
    assert (spec.retry, spec.timeout, spec.filelog, spec.filelog_stdout) == (2, 60, False, None)


@pytest.mark.parametrize(("flags", "message"), [
    (("--mem", "lots"), "--mem: \"lots\" is not a Kubernetes quantity"),
    (("--retry", "2", "--continuous"), "--retry: is only allowed for one-off and scheduled"),
    (("--schedule", "61 * * * *"), "--schedule"),
    (("--timezone", "Mars/Olympus", "--schedule", "@daily"), "--timezone: 'Mars/Olympus'"),
    (("--port", "80"), "--port: is only allowed for continuous jobs"),
    (("--no-filelog", "-o", "x.out"), "--filelog-stdout: is only allowed when filelog is on"),
])
def test_run_names_the_flag_that_is_wrong(h: Harness, tool: ToolHome, flags: tuple[str, ...],
                                          message: str) -> None:
    result = tool.invoke(*HELLO, *flags)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}") or message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert h.runtime.objects(h.tool()) == []


def test_an_invalid_name_is_named_as_the_argument(tool: ToolHome) -> None:
    result = tool.invoke("run", "Bad_Name", "--command", "x", "--image", "bookworm")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: NAME: 'Bad_Name' is not allowed")


@pytest.mark.parametrize(("flags", "message"), [
    (("--schedule", "@daily", "--continuous"), "--schedule and --continuous cannot be used"),
    (("--continuous", "--health-check-script", "x", "--health-check-path", "/h"),
     "--health-check-script and --health-check-path cannot"),
    (("--continuous", "--wait"), "--wait and --follow are only for one-off jobs"),
    (("--retry", "6"), "Invalid value for '--retry'"),
    (("--emails", "often"), "Invalid value for '--emails'"),
])
def test_flag_grammar_errors_are_usage_errors(tool: ToolHome, flags: tuple[str, ...],
                                              message: str) -> None:
    result = tool.invoke(*HELLO, *flags)
    assert result.exit_code == 2
    assert message in result.stderr


def test_the_server_refuses_an_unknown_image_as_a_user_error(h: Harness, tool: ToolHome) -> None:
    result = tool.invoke("run", "x", "--command", "y", "--image", "cobol42")
    assert result.exit_code == 1
    assert result.stderr.startswith('Error: --image: "cobol42" is not a known image')


def test_a_taken_name_says_what_to_do(tool: ToolHome) -> None:
    tool.invoke("run", "web", "--command", "x", "--image", "bookworm", "--continuous")
    result = tool.invoke("run", "web", "--command", "x", "--image", "bookworm", "--continuous")
    assert result.exit_code == 1
    assert "already exists; pick another name, or delete it first" in result.stderr


def _three_jobs(tool: ToolHome) -> None:
    for args in (HELLO, ("run", "tick", "--command", "./tick", "--image", "bookworm",
                         "--schedule", "*/5 * * * *"),
                 ("run", "web", "--command", "./serve " + "--verbose " * 20, "--image",
                  "python3.11", "--continuous")):
        assert tool.invoke(*args).exit_code == 0


def test_list_forms(h: Harness, tool: ToolHome) -> None:
    _three_jobs(tool)
    normal = tool.invoke("list").stdout.splitlines()
    assert normal[0].split() == ["NAME", "TYPE", "STATUS"]
    assert [line.split()[0] for line in normal[1:]] == ["hello", "tick", "web"]
    assert "schedule: */5 * * * *" in normal[2]
    assert "Not running" in normal[3]
    assert tool.invoke("list", "-o", "name").stdout == "hello\ntick\nweb\n"
    documents = json.loads(tool.invoke("list", "-o", "json").stdout)
    assert [doc["name"] for doc in documents] == ["hello", "tick", "web"]
    assert {"status", "status_short", "image_state", "command"} <= set(documents[0])
    assert documents[1]["schedule_actual"] == "*/5 * * * *"
    assert yaml.safe_load(tool.invoke("list", "-o", "yaml").stdout) == documents
    long = tool.invoke("list", "--output", "long").stdout.splitlines()
    assert long[0].split() == ["NAME", "TYPE", "IMAGE", "COMMAND", "STATUS"]


@pytest.mark.parametrize("form", ["normal", "long"])
def test_tables_fit_80_columns(tool: ToolHome, form: str) -> None:
    _three_jobs(tool)
    lines = tool.invoke("list", "-o", form).stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(line.endswith("...") or "..." in line for line in lines) or form == "normal"


def test_a_wider_terminal_shows_more(tool: ToolHome) -> None:
    _three_jobs(tool)
    wide = tool.invoke("list", "-o", "long", session=tool.session(width=300)).stdout
    assert "--verbose " * 19 in wide


def test_colour_only_on_a_terminal_and_never_with_no_color(tool: ToolHome) -> None:
    _three_jobs(tool)
    plain = tool.invoke("list").stdout
    assert not ANSI.search(plain)
    coloured = tool.invoke("list", session=tool.session(stdout_tty=True, width=80)).stdout
    assert ANSI.search(coloured)
    assert ANSI.sub("", coloured) == plain
    no_color = tool.session(environ={**tool.environ, "NO_COLOR": "1"}, stdout_tty=True,
                            width=80)
    assert not ANSI.search(tool.invoke("list", session=no_color).stdout)


def test_an_empty_tool_lists_nothing_and_says_how_to_start(tool: ToolHome) -> None:
    result = tool.invoke("list")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "`toolforge-jobs run`" in result.stderr
    assert tool.invoke("list", "-o", "json").stdout == "[]\n"


def test_show_normal_json_and_yaml(h: Harness, tool: ToolHome) -> None:
    tool.invoke("run", "tick", "--command", "./tick", "--image", "bookworm", "--schedule",
                "@daily", "--emails", "all")
    text = tool.invoke("show", "tick").stdout
    for label, value in (("Name:", "tick"), ("Type:", "schedule: @daily"), ("Emails:", "all"),
                         ("Time zone:", "UTC"), ("Runs at:", ""), ("Next run:", "20")):
        assert any(line.startswith(label) and value in line for line in text.splitlines()), label
    assert max(len(line) for line in text.splitlines()) <= 80
    document = json.loads(tool.invoke("show", "tick", "-o", "json").stdout)
    assert document["schedule"] == "@daily"
    assert document["status"]["next_schedule"]
    assert yaml.safe_load(tool.invoke("show", "tick", "-o", "yaml").stdout) == document


def test_show_says_how_a_finished_job_exited(h: Harness, tool: ToolHome) -> None:
    tool.invoke("run", "once", "--command", "./once", "--image", "bookworm")
    assert "Exit code:" not in tool.invoke("show", "once").stdout
    driver = h.driver()
    driver.set_failed(driver.pods_of("once")[-1], 3)
    lines = tool.invoke("show", "once").stdout.splitlines()
    assert "Exit code: 3" in lines
    assert json.loads(tool.invoke("show", "once", "-o", "json").stdout)["status"]["exit_code"] == 3


def test_show_of_a_missing_job(tool: ToolHome) -> None:
    result = tool.invoke("show", "nope")
    assert result.exit_code == 1
    assert result.stderr == ("Error: job 'nope' does not exist; see `toolforge-jobs list` for "
                             "the tool's jobs\n")


def test_delete_and_a_missing_job_only_warns(h: Harness, tool: ToolHome) -> None:
    tool.invoke(*HELLO)
    result = tool.invoke("delete", "hello")
    assert (result.exit_code, result.stdout) == (0, "Deleted job 'hello'.\n")
    assert h.runtime.objects(h.tool()) == []
    missing = tool.invoke("delete", "hello")
    assert missing.exit_code == 0
    assert missing.stderr == "Warning: job 'hello' does not exist: nothing to delete.\n"


def test_flush_without_a_terminal_does_not_ask(h: Harness, tool: ToolHome) -> None:
    _three_jobs(tool)
    result = tool.invoke("flush")
    assert result.exit_code == 0
    assert result.stdout == "Deleted every job of tool 'alpha'.\n"
    assert h.service.list(h.tool()).jobs == ()


def test_flush_on_a_terminal_asks_first(h: Harness, tool: ToolHome) -> None:
    _three_jobs(tool)
    refused = tool.invoke("flush", input="n\n", session=tool.session(stdin_tty=True))
    assert refused.exit_code == 1
    assert "Delete all 3 jobs of tool 'alpha' (hello, tick, web)?" in refused.stderr
    assert refused.stderr.endswith("Nothing was deleted.\n")
    assert len(h.service.list(h.tool()).jobs) == 3
    accepted = tool.invoke("flush", input="y\n", session=tool.session(stdin_tty=True))
    assert accepted.exit_code == 0
    assert h.service.list(h.tool()).jobs == ()
    _three_jobs(tool)
    assert tool.invoke("flush", "--yes", session=tool.session(stdin_tty=True)).exit_code == 0
    assert h.service.list(h.tool()).jobs == ()
    nothing = tool.invoke("flush", session=tool.session(stdin_tty=True))
    assert nothing.stdout == "The tool has no jobs: nothing to delete.\n"


def test_restart(h: Harness, tool: ToolHome) -> None:
    _three_jobs(tool)
    result = tool.invoke("restart", "tick")
    assert (result.exit_code, result.stdout) == (0, "Restarted job 'tick'.\n")
    runs = [job["metadata"]["name"] for job in h.runtime.objects(h.tool(), "Job")]
    assert [name for name in runs if name.startswith("tick-")]  # the CronJob's manual run
    assert tool.invoke("restart", "web").exit_code == 0
    one_off = tool.invoke("restart", "hello")
    assert one_off.exit_code == 1
    assert "one-off job and cannot be restarted" in one_off.stderr


def test_logs_all_and_the_last_lines(h: Harness, tool: ToolHome) -> None:
    tool.invoke(*HELLO)
    assert tool.invoke("logs", "hello").stderr == "Job 'hello' has no output yet.\n"
    (h.homes / "alpha" / "hello.out").write_text("one\ntwo\nthree\n")
    assert tool.invoke("logs", "hello").stdout == "one\ntwo\nthree\n"
    assert tool.invoke("logs", "hello", "-l", "2").stdout == "two\nthree\n"
    assert tool.invoke("logs", "nope").exit_code == 1


def test_logs_follow_ends_with_the_job(h: Harness, tool: ToolHome) -> None:
    tool.invoke(*HELLO)
    driver = h.driver()
    [pod] = driver.pods_of("hello")
    driver.set_running(pod)
    (h.homes / "alpha" / "hello.out").write_text("started\n")

    import threading
    import time

    def finish() -> None:
        time.sleep(0.3)
        with (h.homes / "alpha" / "hello.out").open("a") as file:
            file.write("done\n")
        driver.set_succeeded(pod)

    threading.Thread(target=finish, daemon=True).start()
    result = tool.invoke("logs", "hello", "--follow")
    assert (result.exit_code, result.stdout) == (0, "started\ndone\n")


def test_images_and_quota(tool: ToolHome) -> None:
    table = tool.invoke("images").stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE"]
    assert any(line.startswith("bookworm ") for line in table)
    assert max(len(line) for line in table) <= 80
    images = json.loads(tool.invoke("images", "-o", "json").stdout)
    assert {"shortname": "bookworm"}.items() <= next(
        image for image in images if image["shortname"] == "bookworm").items()
    quota = tool.invoke("quota").stdout
    assert "Running jobs" in quota
    assert "RESOURCE" in quota
    categories = json.loads(tool.invoke("quota", "-o", "json").stdout)
    assert {category["name"] for category in categories} >= {"Running jobs"}


def test_a_deprecated_image_is_warned_about(h: Harness, tool: ToolHome) -> None:
    catalog = h.runtime.image_catalog()
    deprecated = [image for image in catalog.images if image.state.value == "deprecated"]
    if not deprecated:
        pytest.skip("the bundled catalog has no deprecated image")
    result = tool.invoke("run", "old", "--command", "x", "--image", deprecated[0].shortname)
    assert result.exit_code == 0
    assert "is deprecated" in result.stderr


def test_a_closed_pipe_is_no_error(h: Harness, tool: ToolHome) -> None:
    for number in range(30):
        h.service.run(h.tool(), JobSpec(name=f"job{number}", command="x", image="bookworm"))
    process = tool.popen("list", "-o", "name")
    assert process.stdout is not None
    process.stdout.close()  # as `| head` does once it has read enough
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert "Error" not in stderr


def test_limits_and_quota_refusals_name_the_flag_and_the_next_step(h: Harness,
                                                                  tool: ToolHome) -> None:
    h.runtime.add_tool(h.tool(), limit_range={
        "kind": "LimitRange", "metadata": {"name": "tool-alpha"},
        "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi", "cpu": "1"},
                             "min": {"memory": "100Mi", "cpu": "50m"}}]}})
    too_big = tool.invoke(*HELLO, "--mem", "4Gi")
    assert too_big.exit_code == 1
    assert too_big.stderr.startswith("Error: --mem: ")
    assert "4Gi" in too_big.stderr
    from tjf_core.errors import QuotaExceededError

    h.runtime.fail_next("create", QuotaExceededError(
        "out of quota for count/jobs.batch in quota tool-alpha"))
    refused = tool.invoke(*HELLO)
    assert refused.exit_code == 1
    assert refused.stderr.endswith("; see `toolforge-jobs quota` for the tool's quota and its "
                                   "use\n")
