"""Benchmark: the REST API under keep-alive TLS load, and what it adds to the core's own cost.

Run as ``.venv/bin/python bench/api_load.py [--seconds 8] [--jobs 100] [--clients 32]``.

``tjf-api`` runs as its entry point runs it (``python -m tjf_http --runtime memory``) on
loopback TLS with a throw-away PKI; the tool gets
``--jobs`` jobs (a third each one-off, scheduled and continuous). Then, for each route and for
1 and ``--clients`` clients, requests go back to back for ``--seconds``; every answer must be
200. The clients must not be what is measured (a Python HTTP client library eats as much CPU
as the server on 2 cores), so they run in processes of their own (``--client-processes``) on
raw asyncio streams: one kept-alive HTTP/1.1 TLS connection each with the tool's certificate
(handshake and a first request off the clock), the request prepared once as bytes, answers
parsed no further than status and ``Content-Length``.

Per scenario: requests/s, p50/p99 latency as the clients see it, the server's CPU time per
request (its ``/proc`` counters: load elsewhere does not skew it much), the clients' CPU share
and the 1-minute load average at its end (the machine is shared: every number moves with it).
Then ``service.get`` and ``service.list`` alone, in this process, over an ``InMemoryRuntime``
with the same jobs. Everything stays on 127.0.0.1 and each scenario stops after ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.http.pki

from tests.http.pki import Pki

from tjf_core.convert import job_from_api
from tjf_core.service import JobService
from tjf_core.settings import IdentitySettings, Settings
from tjf_core.testing import InMemoryRuntime

TOOL = "alpha"
#: tjf-api as its entry point runs it.
ENTRY = ("-m", "tjf_http")
_TICKS = os.sysconf("SC_CLK_TCK")


def job_bodies(count: int) -> list[dict[str, Any]]:
    """``count`` jobs as API JSON: one-off, scheduled and continuous in turn."""
    bodies: list[dict[str, Any]] = []
    for index in range(count):
        body: dict[str, Any] = {"name": f"job-{index:03d}", "cmd": f"./work.sh {index}",
                                "imagename": "bookworm"}
        if index % 3 == 1:
            body["schedule"] = "@daily"
        elif index % 3 == 2:
            body["continuous"] = True
        bodies.append(body)
    return bodies


def load_average() -> float:
    """The 1-minute load average of the machine."""
    return float(Path("/proc/loadavg").read_text().split()[0])


# --- the server process ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/v1/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@attrs.define
class ServerProcess:
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(cls, *, pki: Pki, scratch: Path, threads: int, access_log: bool,
              extra: Sequence[str], entry: Sequence[str] = ENTRY) -> ServerProcess:
        port, ops = _free_port(), _free_port()
        (scratch / "homes" / TOOL).mkdir(parents=True)
        log = scratch / "server.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, *entry, "--runtime", "memory",
                 "--host", "127.0.0.1", "--port", str(port), "--cert", str(pki.server.cert),
                 "--key", str(pki.server.key), "--client-ca", str(pki.ca),
                 "--ops-host", "127.0.0.1", "--ops-port", str(ops), "--log-level", "warning",
                 "--threads", str(threads),
                 "--set", f"server.access_log={str(access_log).lower()}",
                 "--set", f"identity.home_template={scratch}/homes/{{tool}}",
                 *(arg for setting in extra for arg in ("--set", setting))],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
        server = cls(popen, port, log)
        deadline = time.monotonic() + 30
        while not _healthy(ops):
            if popen.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"tjf-api did not start:\n{log.read_text()}")
            time.sleep(0.05)
        return server

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


# --- the load generator (in processes of its own) ----------------------------------------

@attrs.frozen(kw_only=True)
class Target:
    """Where the clients connect and with which certificate."""

    port: int
    ca: str
    cert: str
    key: str

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(self.cert, self.key)
        return context


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> None:
    """Send ``request`` and read its whole answer; RuntimeError unless it is a 200."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if head[9:12] != b"200":
        raise RuntimeError(f"answered {head[:64]!r}")
    start = head.lower().find(b"\r\ncontent-length:")
    if start < 0:
        raise RuntimeError("an answer without Content-Length (chunked?) is not expected here")
    end = head.index(b"\r\n", start + 2)
    await reader.readexactly(int(head[start + 17:end]))


async def _clients(target: Target, *, path: str, clients: int, seconds: float,
                   ready: multiprocessing.connection.Connection) -> dict[str, Any]:
    context = target.context()
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
               "Accept: application/json\r\n\r\n").encode()
    streams = [await asyncio.open_connection("127.0.0.1", target.port, ssl=context)
               for _ in range(clients)]
    for reader, writer in streams:  # handshakes and first requests, off the clock
        await _exchange(reader, writer, request)
    ready.send("ready")
    ready.recv()  # go
    latencies: list[list[float]] = [[] for _ in streams]
    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     into: list[float]) -> None:
        clock = time.perf_counter
        while (now := clock()) < deadline:
            await _exchange(reader, writer, request)
            into.append(clock() - now)

    await asyncio.gather(*(client(r, w, into) for (r, w), into in zip(streams, latencies,
                                                                      strict=True)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    for _, writer in streams:
        writer.close()
    return {"latencies": [value for each in latencies for value in each],
            "seconds": elapsed, "cpu": cpu}


def _client_process(target: Target, path: str, clients: int, seconds: float,
                    channel: multiprocessing.connection.Connection) -> None:
    try:
        result = asyncio.run(_clients(target, path=path, clients=clients, seconds=seconds,
                                 ready=channel))
    except Exception as error:  # reported to the parent, which fails the run
        channel.send({"error": f"{type(error).__name__}: {error}"})
    else:
        channel.send(result)
    finally:
        channel.close()


@attrs.frozen
class Result:
    scenario: str
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float
    load: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_load(target: Target, path: str, *, clients: int, processes: int, seconds: float,
             server: ServerProcess, scenario: str) -> Result:
    """``clients`` connections spread over ``processes`` processes, started together."""
    processes = min(processes, clients)
    shares = [clients // processes + (1 if i < clients % processes else 0)
              for i in range(processes)]
    context = multiprocessing.get_context("fork")
    workers, channels = [], []
    for share in shares:
        parent, child = context.Pipe()
        worker = context.Process(target=_client_process,
                                 args=(target, path, share, seconds, child), daemon=True)
        worker.start()
        child.close()
        workers.append(worker)
        channels.append(parent)
    try:
        for channel in channels:
            if not channel.poll(60):
                raise RuntimeError("a client process did not get ready in 60 s")
            said = channel.recv()
            if said != "ready":
                raise RuntimeError(f"a client process failed: {said}")
        cpu_before = server.cpu_seconds()
        for channel in channels:
            channel.send("go")
        answers = []
        for channel in channels:
            if not channel.poll(seconds + 60):
                raise RuntimeError("a client process did not finish")
            answers.append(channel.recv())
        server_cpu = server.cpu_seconds() - cpu_before
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    failed = [answer["error"] for answer in answers if "error" in answer]
    if failed:
        raise RuntimeError(f"{scenario}: {failed[0]}")
    latencies = [value for answer in answers for value in answer["latencies"]]
    return Result(scenario, clients, len(latencies), max(a["seconds"] for a in answers),
                  latencies, server_cpu, sum(a["cpu"] for a in answers), load_average())


def populate(target: Target, count: int) -> None:
    connection = http.client.HTTPSConnection("127.0.0.1", target.port, context=target.context(),
                                             timeout=30)
    try:
        for body in job_bodies(count):
            connection.request("POST", f"/v1/tool/{TOOL}/jobs", body=json.dumps(body),
                               headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            text = answer.read()
            if answer.status != 201:
                raise RuntimeError(f"creating {body['name']}: {answer.status} {text!r}")
    finally:
        connection.close()


# --- the core alone ----------------------------------------------------------------------

def direct(call: Callable[[], object], *, seconds: float, scenario: str) -> Result:
    """The core operation alone, in this process, one call after the other."""
    call()
    latencies: list[float] = []
    cpu_before = time.process_time()
    started = time.perf_counter()
    while (now := time.perf_counter()) < started + seconds:
        call()
        latencies.append(time.perf_counter() - now)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    return Result(scenario, 1, len(latencies), elapsed, latencies, cpu, 0.0, load_average())


def direct_service(jobs: int, homes: Path) -> JobService:
    service = JobService(InMemoryRuntime(), settings=Settings(
        identity=IdentitySettings(home_template=f"{homes}/{{tool}}")))
    tool = service.identity(TOOL)
    for body in job_bodies(jobs):
        service.run(tool, job_from_api(body))
    return service


# --- report ------------------------------------------------------------------------------

def _row(result: Result) -> str:
    per_request = result.server_cpu / result.requests * 1000 if result.requests else 0.0
    client = f"{result.client_cpu / result.seconds:.0%}" if result.client_cpu else "-"
    return (f"| {result.scenario} | {result.clients} | {result.requests} | {result.rate:,.0f} "
            f"| {result.percentile(0.5) * 1000:.2f} | {result.percentile(0.99) * 1000:.2f} "
            f"| {per_request:.2f} | {client} | {result.load:.2f} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each scenario")
    parser.add_argument("--jobs", type=int, default=100, help="jobs the tool has")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--client-processes", type=int, default=1,
                        help="processes the clients are spread over")
    parser.add_argument("--threads", type=int, default=16, help="the server's server.threads")
    parser.add_argument("--no-access-log", action="store_true",
                        help="server.access_log = false (it is on in production)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="another server setting, e.g. server.threads=4")
    parser.add_argument("--only", choices=("healthz", "get", "list"), action="append",
                        help="run only these routes (default: all three)")
    args = parser.parse_args(argv)
    if (not 0 < args.seconds <= 60 or not 1 <= args.clients <= 256 or not 1 <= args.jobs <= 300
            or not 1 <= args.client_processes <= 8):
        parser.error("keep it bounded: --seconds 0-60, --clients 1-256, --jobs 1-300, "
                     "--client-processes 1-8")

    scratch = Path(tempfile.mkdtemp(prefix="tjf-api-load-"))
    pki = Pki.create(scratch)
    load_before = load_average()
    server = ServerProcess.start(pki=pki, scratch=scratch, threads=args.threads,
                                 access_log=not args.no_access_log, extra=args.set)
    target = Target(port=server.port, ca=str(pki.ca), cert=str(pki.alpha.cert),
                    key=str(pki.alpha.key))
    one = f"job-{args.jobs // 2:03d}"
    routes = {"healthz": ("GET /v1/healthz (TLS, no core call)", "/v1/healthz"),
              "get": ("GET /v1/tool/{tool}/jobs/{name}", f"/v1/tool/{TOOL}/jobs/{one}"),
              "list": ("GET /v1/tool/{tool}/jobs", f"/v1/tool/{TOOL}/jobs")}
    chosen = [routes[name] for name in routes if args.only is None or name in args.only]
    results: list[Result] = []
    try:
        populate(target, args.jobs)
        for scenario, path in chosen:
            for clients in sorted({1, args.clients}):
                result = run_load(target, path, clients=clients, processes=args.client_processes,
                                  seconds=args.seconds, server=server, scenario=scenario)
                results.append(result)
                print(f"{scenario}, {clients} client(s): {result.rate:,.0f} req/s, "
                      f"load {result.load:.2f}", file=sys.stderr)
    finally:
        server.stop()

    service = direct_service(args.jobs, scratch / "homes")
    tool = service.identity(TOOL)
    direct_results = [
        direct(lambda: service.get(tool, one), seconds=min(args.seconds, 5),
               scenario="service.get (in process)"),
        direct(lambda: service.list(tool), seconds=min(args.seconds, 5),
               scenario="service.list (in process)"),
    ]

    print(f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.jobs} jobs, {args.seconds:g} s per scenario, server.threads {args.threads}, "
          f"access log {'off' if args.no_access_log else 'on'}, settings {args.set or 'default'}"
          f", {args.client_processes} client process(es); load average {load_before:.2f} "
          "before\n")
    print("| scenario | clients | requests | req/s | p50 ms | p99 ms | server CPU ms/req "
          "| client CPU | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for result in [*results, *direct_results]:
        print(_row(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
