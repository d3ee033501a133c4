"""Starting fast, and what starting imports; help under the toolforge wrapper; completion."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.conftest import ToolHome
from tests.http.conftest import Harness

#: Run the client in a fresh interpreter, then say which of these modules it imported.
_PROBE = """
import sys
from tjf_cli.__main__ import main
code = main(sys.argv[1:])
heavy = ("kubernetes", "aiohttp", "urllib3", "tjf_core.kube", "tjf_core.service",
         "tjf_http.app", "tjf_http.server", "tjf_cli.direct")
found = sorted(m for m in sys.modules if m in heavy or m.split(".")[0] in heavy)
print("exit", code, "imported", ",".join(found) or "-", file=sys.stderr)
"""


def _probe(tool: ToolHome, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          text=True, env={**tool.environ, **(env or {})}, timeout=60,
                          check=False)
    last = done.stderr.splitlines()[-1].split()
    assert last[0] == "exit", done.stderr
    return int(last[1]), last[3]


def test_the_api_mode_never_imports_kubernetes_nor_an_http_server(tool: ToolHome) -> None:
    assert _probe(tool, "list") == (0, "-")
    assert _probe(tool, "run", "x", "--command", "y", "--image", "bookworm") == (0, "-")


def test_help_imports_neither_the_core_nor_the_client() -> None:
    code = ("import sys\nfrom tjf_cli.__main__ import main\nmain(['--help'])\nmain(['run', "
            "'--help'])\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('tjf_core', "
            "'tjf_http', 'attrs', 'attr', 'yaml', 'cattrs', 'cryptography', 'ssl')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines()[-1] == "[]"


def test_direct_mode_imports_kubernetes_only_then(tool: ToolHome) -> None:
    tool.configure({"jobs": {"mode": "direct"}})
    code, imported = _probe(tool, "list")
    assert {"kubernetes", "tjf_core.kube", "tjf_cli.direct"} <= set(imported.split(","))
    assert code in (1, 2)  # the kubeconfig's cluster (k8s.invalid) cannot be reached


def test_direct_mode_failures_are_one_line(tool: ToolHome) -> None:
    tool.configure({"jobs": {"mode": "direct"}})
    done = tool.run_process("list")
    assert done.returncode in (1, 2)
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("Error: ")


def test_under_the_toolforge_wrapper(tool: ToolHome) -> None:
    wrapped = {"TOOLFORGE_CLI": "1"}
    help_text = tool.invoke("--help", env=wrapped).stdout
    assert help_text.startswith("Usage: toolforge jobs [OPTIONS] COMMAND")
    assert "--debug" not in help_text
    assert "--debug" not in tool.invoke("run", "--help", env=wrapped).stdout
    assert "Usage: toolforge jobs run [OPTIONS] NAME" in tool.invoke(
        "run", "--help", env=wrapped).stdout
    assert "`toolforge jobs list`" in tool.invoke("show", "nope", env=wrapped).stderr
    plain = tool.invoke("--help").stdout
    assert plain.startswith("Usage: toolforge-jobs [OPTIONS] COMMAND")
    assert "--debug" in plain


def test_version(tool: ToolHome) -> None:
    result = tool.invoke("--version")
    assert result.stdout.startswith("toolforge-jobs ")


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F"), ("zsh", "#compdef toolforge-jobs"),
    ("fish", "complete --no-files --command toolforge-jobs")])
def test_completion_scripts(tool: ToolHome, shell: str, marker: str) -> None:
    result = tool.invoke("completion", shell)
    assert result.exit_code == 0
    assert marker in result.stdout
    assert "_TOOLFORGE_JOBS_COMPLETE" in result.stdout


def _complete(tool: ToolHome, shell: str, words: str) -> list[str]:
    # bash and zsh give the index of the word being completed, fish the word itself.
    current = words.split()[-1] if shell == "fish" else str(len(words.split()) - 1)
    env = {"_TOOLFORGE_JOBS_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": current}
    done = subprocess.run([sys.executable, "-m", "tjf_cli"], capture_output=True, text=True,
                          env={**tool.environ, **env}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_job_names_complete_in_every_shell(h: Harness, tool: ToolHome) -> None:
    for name in ("hello", "help-me", "other"):
        tool.invoke("run", name, "--command", "x", "--image", "bookworm")
    assert _complete(tool, "bash", "toolforge-jobs show he") == ["plain,hello", "plain,help-me"]
    zsh = _complete(tool, "zsh", "toolforge-jobs logs he")
    assert zsh[:3] == ["plain", "hello", "Pending"]
    fish = _complete(tool, "fish", "toolforge-jobs delete o")
    assert fish == ["plain,other\tPending"]
    commands = _complete(tool, "bash", "toolforge-jobs re")
    assert commands == ["plain,restart"]
    choices = _complete(tool, "bash", "toolforge-jobs run x --emails on")
    assert choices == ["plain,onfinish", "plain,onfailure"]


def test_completion_offers_nothing_when_the_api_is_away(h: Harness, tool: ToolHome) -> None:
    h.stop()
    assert _complete(tool, "bash", "toolforge-jobs show he") == []


def test_load_job_completes_from_the_file(tool: ToolHome) -> None:
    path = tool.home / "jobs.yaml"
    path.write_text("- {name: alpha, command: x, image: bookworm}\n"
                    "- {name: beta, command: x, image: bookworm}\n")
    assert _complete(tool, "bash", f"toolforge-jobs load {path} --job b") == ["plain,beta"]
