"""The main job, end to end, on this machine: tjf-api in local mode and the real CLI.

What it does, printing each step as it goes (commands and their output):

1. starts an SMTP sink on a free loopback port (it stands in for the mail server: nothing
   leaves this machine);
2. starts ``tjf-api`` in local mode (no cluster: jobs are processes here) on a unix socket in
   a temporary directory, with its embedded emailer pointed at the sink;
3. runs ``toolforge-jobs`` against it: ``images``; a one-off job with ``--wait``; a scheduled
   job, fired now with ``restart``; a continuous web server, reached over HTTP; ``list``;
   ``logs``; a failing job asking for email on failure, then shows the email it caused;
   ``flush``;
4. stops the server with SIGTERM and checks that it exits cleanly and leaves no job process.

Exits 0 when every step behaved as expected; otherwise 1, saying which step did not and
showing the end of the server's log. The tool is the unix user running the demo.
Run it with ``scripts/demo`` (or ``scripts/main``, which sets up ``.venv`` first).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tjf_core.errors import TjfError
from tjf_core.local_identity import tool_from_username
from tjf_http.client import JobsClient
from tjf_http.credentials import unix_user_name

#: The PATH a job gets (the container's): the web job's python3 must be on it, or be named.
JOB_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BIN = Path(sys.executable).parent


class DemoFailed(Exception):
    """A step did not do what it should."""


class Sink:
    """An SMTP server that keeps every email it is given (aiosmtpd, in a thread)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()
        self.port = _free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        data = content if isinstance(content, bytes) else str(content).encode()
        with self._lock:
            self.messages.append(message_from_bytes(data))
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def received(self) -> int:
        with self._lock:
            return len(self.messages)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _clean_environ() -> dict[str, str]:
    """This environment without tjf settings or a cluster: the demo's config is the config."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("TJF_") and k != "KUBERNETES_SERVICE_HOST"}


def _job_processes(root: Path) -> list[int]:
    """The processes working in a tool home under ``root``: the jobs' (their cwd is there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(root) or cwd.startswith(f"{root}/"):
            found.append(int(entry.name))
    return found


class Demo:
    """The steps, their printing, and the server they talk to."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = base / "api.sock"
        self.root = base / "tools"
        self.state = base / "state"
        self.server_log = base / "tjf-api.log"
        self.server: subprocess.Popen[bytes] | None = None
        self.started = time.monotonic()
        self.steps = 0
        self.cli_env = {**_clean_environ(), "TJF_API_URL": f"unix://{self.socket}"}

    # --- printing and running ----------------------------------------------------------------

    def step(self, title: str) -> None:
        self.steps += 1
        print(f"\n== {self.steps}. {title}  [{time.monotonic() - self.started:4.1f} s]",
              flush=True)

    @staticmethod
    def say(text: str) -> None:
        for line in text.rstrip("\n").splitlines() or [""]:
            print(f"   {line}", flush=True)

    def cli(self, *args: str, expect: int = 0) -> str:
        """Run ``toolforge-jobs ARGS``, print it and its output, check its exit status."""
        print(f"   $ toolforge-jobs {shlex.join(args)}", flush=True)
        command = [str(BIN / "toolforge-jobs")] if (BIN / "toolforge-jobs").exists() else [
            sys.executable, "-m", "tjf_cli"]
        done = subprocess.run([*command, *args], env=self.cli_env, capture_output=True,
                              text=True, timeout=120, check=False)
        output = done.stdout + done.stderr
        for line in output.rstrip("\n").splitlines():
            print(f"     {line}", flush=True)
        print(f"     (exit status {done.returncode})", flush=True)
        if done.returncode != expect:
            raise DemoFailed(f"`toolforge-jobs {shlex.join(args)}` exited {done.returncode}, "
                             f"expected {expect}")
        return output

    def client(self) -> JobsClient:
        return JobsClient(f"unix://{self.socket}", certificate=None, timeout=10.0)

    @staticmethod
    def wait_for(what: str, check: Callable[[], Any], *, timeout: float) -> Any:
        """Poll ``check`` until it gives something true; DemoFailed after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = check()
            except TjfError:
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise DemoFailed(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.1)

    # --- the server --------------------------------------------------------------------------

    def start_server(self, sink: Sink) -> None:
        config = self.base / "api.toml"
        config.write_text(f"""\
runtime = "local"   # also the default when no cluster is configured

[local]
socket = "{self.socket}"
root = "{self.root}"          # tool T's home is {self.root}/T
state_dir = "{self.state}"
grace_period = 3
single_user = true   # only you may call; your jobs run as you (a shared server sets run_as)

[server]
shutdown_grace_seconds = 5

[emailer]
smtp_server_fqdn = "127.0.0.1"
smtp_server_port = {sink.port}
email_from_addr = "tjf-demo@localhost"
email_to_prefix = ""
email_to_domain = "localhost"
group_wait = 1
task_send_emails_loop_sleep = 1
""")
        self.say(f"{config}:")
        for line in config.read_text().splitlines():
            self.say(f"  {line}")
        command = ([str(BIN / "tjf-api")] if (BIN / "tjf-api").exists() else
                   [sys.executable, "-m", "tjf_http"])
        self.say(f"$ tjf-api --config {config}   (log: {self.server_log})")
        with self.server_log.open("wb") as log:
            self.server = subprocess.Popen([*command, "--config", str(config)],
                                           stdout=log, stderr=subprocess.STDOUT,
                                           env=_clean_environ(), start_new_session=True)

        def ready() -> bool:
            if self.server is not None and self.server.poll() is not None:
                raise DemoFailed(f"tjf-api exited at start with status {self.server.returncode}")
            if not self.socket.exists():
                return False
            with self.client() as client:
                return bool(client.images())

        self.wait_for("tjf-api to answer on its socket", ready, timeout=30)
        self.say(f"listening on unix://{self.socket} (mode "
                 f"{oct(self.socket.stat().st_mode & 0o777)[2:]}: callers are known by their "
                 "unix user)")

    def stop_server(self) -> int:
        server = self.server
        if server is None:
            return 0
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise DemoFailed("tjf-api did not stop within 40 s of SIGTERM") from None
        self.server = None
        return code

    def abort(self) -> None:
        """After a failure: show the server's log, stop it (and any job it left) for sure."""
        if self.server_log.exists():
            print("\n-- the end of tjf-api's log:", file=sys.stderr)
            for line in self.server_log.read_text(errors="replace").splitlines()[-25:]:
                print(f"   {line}", file=sys.stderr)
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        for pid in _job_processes(self.root):
            os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _python_for_jobs() -> str:
    found = shutil.which("python3", path=JOB_PATH)
    return "python3" if found else sys.executable


def run(demo: Demo, tool: str) -> None:
    demo.step("Start an SMTP sink: it stands in for the mail server")
    sink = Sink()
    sink.start()
    try:
        demo.say(f"listening on 127.0.0.1:{sink.port}")
        _run_with_sink(demo, tool, sink)
    finally:
        sink.stop()


def _run_with_sink(demo: Demo, tool: str, sink: Sink) -> None:
    demo.step("Start tjf-api in local mode: no cluster, jobs run as processes here")
    demo.start_server(sink)
    demo.say(f"the tool is {tool!r}: your unix user, told by the socket's peer credentials")

    demo.step("The images a job may use (on this machine an image is only a label)")
    images = demo.cli("images")
    rows = [line.split()[0] for line in images.splitlines()[1:] if line.strip()]
    if not rows:
        raise DemoFailed("`images` listed no image")
    image = rows[0]

    demo.step("A one-off job, waiting for it to end")
    out = demo.cli("run", "hello", "--command", "echo hello from a job", "--image", image,
                   "--wait")
    if "succeeded" not in out:
        raise DemoFailed("the one-off job `hello` did not say it succeeded")

    demo.step("A scheduled job (every minute), fired now with `restart`")
    demo.cli("run", "tick", "--command", 'echo "tick at $(date -u +%T)"', "--image", image,
             "--schedule", "* * * * *")
    demo.cli("restart", "tick")
    with demo.client() as client:
        line = demo.wait_for("the scheduled job's run to write its line",
                             lambda: [x for x in client.logs("tick") if "tick at" in x],
                             timeout=30)
    demo.say(f"it ran: {line[0]}")

    demo.step("A continuous job: a web server, kept running")
    port = _free_port()
    demo.cli("run", "web", "--continuous", "--port", str(port), "--image", image, "--command",
             f"{_python_for_jobs()} -m http.server $PORT --bind 127.0.0.1")
    with demo.client() as client:
        demo.wait_for("`web` to be running",
                      lambda: client.get("web").status_short.lower() == "running", timeout=30)

    def answers() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return int(response.status)
        except OSError:
            return 0

    status = demo.wait_for(f"`web` to answer on port {port}", answers, timeout=30)
    demo.say(f"GET http://127.0.0.1:{port}/ -> {status}")

    demo.step("List the jobs")
    listing = demo.cli("list")
    for name in ("hello", "tick", "web"):
        if name not in listing:
            raise DemoFailed(f"`list` does not show the job {name!r}")

    demo.step("The jobs' output (files in the tool's home, as on Toolforge)")
    if "hello from a job" not in demo.cli("logs", "hello"):
        raise DemoFailed("`logs hello` does not show what the job wrote")
    demo.cli("logs", "web")

    demo.step("The continuous job is kept alive: kill its process")
    victims = [pid for pid in _job_processes(demo.root)
               if _cmdline(pid).split(" ", 1)[0] != "/bin/sh" and "http.server" in _cmdline(pid)]
    if not victims:
        raise DemoFailed("no process of the job `web` was found")
    demo.say(f"$ kill -KILL {' '.join(map(str, victims))}")
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    demo.say("the runtime starts it again after the kubelet's back-off (10 s the first time)")
    status = demo.wait_for(f"`web` to answer again on port {port}", answers, timeout=40)
    demo.say(f"GET http://127.0.0.1:{port}/ -> {status}")
    out = demo.cli("show", "web")
    if "Restarted 1 time" not in out:
        raise DemoFailed("`show web` does not say that it was restarted once")
    demo.say("(until it has run for 10 minutes, its status remembers that its command failed)")

    demo.step("A job that fails, asking for an email when it fails")
    demo.cli("run", "boom", "--command", "echo about to fail; exit 3", "--image", image,
             "--emails", "onfailure", "--wait", expect=3)
    demo.say("waiting for the emailer (group_wait 1 s) ...")
    demo.wait_for("the failure email to reach the sink", sink.received, timeout=30)
    message = sink.messages[0]
    sender, recipients = sink.envelopes[0]
    demo.say(f"the sink received an email from {sender} to {', '.join(recipients)}:")
    demo.say(f"  Subject: {message['Subject']}")
    body = message.get_payload(decode=True)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    for line in text.splitlines():
        demo.say(f"  | {line}")
    if "boom" not in str(message["Subject"]) + text or "exit code 3" not in text:
        raise DemoFailed("the email does not tell of job boom's exit code 3")

    demo.step("Delete every job")
    demo.cli("flush", "--yes")
    with demo.client() as client:
        demo.wait_for("no jobs to be left", lambda: not client.list().jobs, timeout=30)
    demo.wait_for("the jobs' processes to end", lambda: not _job_processes(demo.root),
                  timeout=30)
    demo.say("no job process is left")

    demo.step("Stop tjf-api (SIGTERM)")
    code = demo.stop_server()
    demo.say(f"tjf-api exited with status {code}")
    if code != 0:
        raise DemoFailed(f"tjf-api exited with status {code}, expected 0")
    if demo.socket.exists():
        raise DemoFailed(f"tjf-api left its socket {demo.socket} behind")
    left = _job_processes(demo.root)
    if left:
        raise DemoFailed(f"job processes are left after the server stopped: {left}")
    demo.say("stopped cleanly: no socket, no job process left")


def main() -> int:
    user = unix_user_name()
    try:
        tool = tool_from_username(user)
    except TjfError as error:
        print(f"demo: {error}. The local API knows a caller's tool by its unix user: run the "
              "demo as a user whose name is a tool name (lower case letters, digits, '-').",
              file=sys.stderr)
        return 1
    print("tjf demo: the jobs framework on this machine, without a cluster "
          f"(tool {tool!r}, python {sys.version.split()[0]})")
    # /tmp keeps the socket's path short (a unix socket path has ~100 bytes at most).
    with tempfile.TemporaryDirectory(prefix="tjf-demo-", dir="/tmp") as tmp:
        demo = Demo(Path(tmp))
        try:
            run(demo, tool)
        except (DemoFailed, TjfError, OSError, subprocess.SubprocessError) as error:
            print(f"\ndemo FAILED at step {demo.steps}: {error}", file=sys.stderr)
            demo.abort()
            return 1
        except BaseException:
            demo.abort()
            raise
    print(f"\ndemo done in {time.monotonic() - demo.started:.1f} s: every step behaved as "
          "expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
