"""Benchmark: the cold start of ``toolforge-jobs`` (``--help``, and ``list`` against a local API).

Run as ``.venv/bin/python bench/cli_start.py [--runs 10] [--jobs 10] [--compare SRC]``.

A tool's login is made in a scratch directory: a throw-away PKI, the tool's kubeconfig naming
its certificate files, and a ``toolforge.yaml`` naming the API and its CA. ``tjf-api`` runs in a
process of its own (``--runtime memory``, TLS on loopback) with ``--jobs`` one-off jobs created
through the CLI. Then ``toolforge-jobs --help`` and ``toolforge-jobs list`` run ``--runs`` times
each, interleaved, as the installed console script does (a fresh interpreter importing
``tjf_cli.__main__``). Reported per command: the median and minimum wall time, and the median
CPU time of the client process (user + system), which other work on the machine disturbs
less. ``--importtime`` prints the slowest imports of one ``list`` run (``python -X
importtime``), the tool to find what a start costs. ``--compare SRC`` also runs the client
from another source tree (``git archive COMMIT src | tar -x -C /tmp/old``, then ``--compare
/tmp/old/src``), its runs interleaved with this tree's so both see the same machine. The load
average is printed too. Wall times on a busy machine say little, so ``--instructions`` also
counts the instructions of one run of each command (valgrind's cachegrind, when installed):
they hardly move with load.

Everything stays on 127.0.0.1; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.http.pki

from tests.http.pki import Pki

START = "import sys; from tjf_cli.__main__ import main; sys.exit(main())"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _login(scratch: Path, pki: Pki, port: int) -> dict[str, str]:
    home = scratch / "home"
    certs = home / ".kube" / "certs"
    certs.mkdir(parents=True)
    shutil.copy(pki.alpha.cert, certs / "client.crt")
    shutil.copy(pki.alpha.key, certs / "client.key")
    (home / ".kube" / "config").write_text(yaml.safe_dump({
        "current-context": "t", "contexts": [{"name": "t", "context": {"user": "tf-alpha"}}],
        "users": [{"name": "tf-alpha", "user": {"client-certificate": "certs/client.crt",
                                                "client-key": "certs/client.key"}}]}))
    (home / ".toolforge.yaml").write_text(yaml.safe_dump({
        "api_gateway": {"url": f"https://127.0.0.1:{port}", "ca_file": str(pki.ca)},
        "jobs": {"jobs_endpoint": ""}}))
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _start_server(scratch: Path, pki: Pki, port: int) -> subprocess.Popen[bytes]:
    (scratch / "homes" / "alpha").mkdir(parents=True)
    log = (scratch / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "tjf_http", "--runtime", "memory", "--host", "127.0.0.1",
         "--port", str(port), "--cert", str(pki.server.cert), "--key", str(pki.server.key),
         "--client-ca", str(pki.ca), "--ops-port", str(_free_port()), "--log-level", "warning",
         "--set", f"identity.home_template={scratch}/homes/{{tool}}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tjf-api did not start: {(scratch / 'server.log').read_text()}"
                                   ) from None
            time.sleep(0.05)


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run of the client."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", START, *args], env=env, capture_output=True,
                          timeout=60, check=False)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed: {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def _instructions(args: list[str], env: dict[str, str]) -> int:
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                           "--cachegrind-out-file=/dev/null", sys.executable, "-c", START,
                           *args], env=env, capture_output=True, text=True, timeout=600,
                          check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind: {done.stderr[-300:]}")
    return int(found[1].replace(",", ""))


def _importtime(env: dict[str, str], top: int) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", START, "list"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    rows = []
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if found and len(found[3]) <= 3:  # the imports of the client's own modules
            rows.append((int(found[2]) / 1000, found[3] + found[4]))
    print(f"slowest imports of one `list` (cumulative ms, top {top}):")
    for ms, name in sorted(rows, reverse=True)[:top]:
        print(f"  {ms:6.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--compare", metavar="SRC", help="another tree's src/ to run as well")
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="tjf-cli-bench-"))
    pki = Pki.create(scratch)
    port = _free_port()
    server = _start_server(scratch, pki, port)
    try:
        env = _login(scratch, pki, port)
        for number in range(args.jobs):
            _run(["run", f"job-{number}", "--command", "./run", "--image", "bookworm"], env)
        trees = {"this tree": env}
        if args.compare:
            trees[args.compare] = {**env, "PYTHONPATH": args.compare}
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {
            (tree, command): [] for tree in trees for command in ("--help", "list")}
        for _ in range(args.runs):
            for (tree, command), found in samples.items():
                found.append(_run([command], trees[tree]))
        for (tree, command), found in samples.items():
            walls, cpus = [wall for wall, _ in found], [cpu for _, cpu in found]
            print(f"{tree}: toolforge-jobs {command:6}  wall median "
                  f"{statistics.median(walls):6.1f} ms  min {min(walls):6.1f} ms  "
                  f"CPU median {statistics.median(cpus):6.1f} ms")
        if args.instructions:
            for tree, tree_env in trees.items():
                for command in ("--help", "list"):
                    count = _instructions([command], tree_env)
                    print(f"{tree}: toolforge-jobs {command:6}  {count / 1e6:6.0f} M "
                          "instructions")
        if args.importtime:
            _importtime(env, 15)
        print("load average:", Path("/proc/loadavg").read_text().split()[:3])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
