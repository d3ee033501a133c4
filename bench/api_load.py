"""Benchmark: the REST API under keep-alive TLS load, and what it adds to the core's own cost.

Run as ``.venv/bin/python bench/api_load.py [--seconds 10] [--jobs 100] [--clients 32]``.

``tjf-api`` runs in a process of its own (``--runtime memory``, direct TLS listener on
loopback, a throw-away PKI), so the load does not share its event loop; the tool gets
``--jobs`` jobs (a third each one-off, scheduled and continuous) through the API. Then, for
each route and for 1 and ``--clients`` concurrent clients (each one aiohttp session with one
kept-alive TLS connection and the tool's client certificate, the handshake done before the
clock starts), requests are sent back to back for ``--seconds``; every answer must be 200.
Reported per scenario: requests/s, p50/p99 latency as the client sees it, and the server's
CPU time per request (its ``/proc`` counters), which load on the client side does not skew.

Routes: ``GET /v1/healthz`` over the same TLS (no core call: the HTTP layer's own cost),
``GET /v1/tool/{tool}/jobs/{name}`` and ``GET /v1/tool/{tool}/jobs``. The same two core
operations are then timed in this process on a ``JobService`` over an ``InMemoryRuntime``
with the same jobs (``service.get``, ``service.list``), one call after the other; the
difference is the server's overhead per request.

Everything stays on 127.0.0.1 and each scenario stops after ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import platform
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.http.pki

from tests.http.pki import Pki

from tjf_core.convert import job_from_api
from tjf_core.service import JobService
from tjf_core.settings import IdentitySettings, Settings
from tjf_core.testing import InMemoryRuntime

TOOL = "alpha"
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
    def start(cls, *, pki: Pki, scratch: Path, threads: int, access_log: bool) -> ServerProcess:
        port, ops = _free_port(), _free_port()
        (scratch / "homes" / TOOL).mkdir(parents=True)
        log = scratch / "server.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tjf_http", "--runtime", "memory",
                 "--host", "127.0.0.1", "--port", str(port), "--cert", str(pki.server.cert),
                 "--key", str(pki.server.key), "--client-ca", str(pki.ca),
                 "--ops-host", "127.0.0.1", "--ops-port", str(ops), "--log-level", "warning",
                 "--threads", str(threads),
                 "--set", f"server.access_log={str(access_log).lower()}",
                 "--set", f"identity.home_template={scratch}/homes/{{tool}}"],
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


# --- load --------------------------------------------------------------------------------

@attrs.frozen
class Result:
    scenario: str
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _tls(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.alpha.cert), str(pki.alpha.key))
    return context


async def _populate(base: str, context: ssl.SSLContext, count: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for body in job_bodies(count):
            async with session.post(f"{base}/v1/tool/{TOOL}/jobs", json=body) as answer:
                if answer.status != 201:
                    raise RuntimeError(f"creating {body['name']}: {answer.status} "
                                       f"{await answer.text()}")


async def _load(url: str, *, context: ssl.SSLContext, clients: int, seconds: float,
                server: ServerProcess, scenario: str) -> Result:
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=1))
                for _ in range(clients)]
    try:
        for session in sessions:  # handshakes and first requests, off the clock
            async with session.get(url) as answer:
                await answer.read()
        latencies: list[list[float]] = [[] for _ in range(clients)]
        cpu_before, client_before = server.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        deadline = started + seconds

        async def client(session: aiohttp.ClientSession, into: list[float]) -> None:
            while (now := time.perf_counter()) < deadline:
                async with session.get(url) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"{url}: {answer.status}")
                into.append(time.perf_counter() - now)

        await asyncio.gather(*(client(s, into) for s, into in zip(sessions, latencies,
                                                                   strict=True)))
        elapsed = time.perf_counter() - started
        flat = [value for each in latencies for value in each]
        return Result(scenario, clients, len(flat), elapsed, flat,
                      server.cpu_seconds() - cpu_before, time.process_time() - client_before)
    finally:
        for session in sessions:
            await session.close()


def direct(service: JobService, call: Callable[[], object], *, seconds: float,
           scenario: str) -> Result:
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
    return Result(scenario, 1, len(latencies), elapsed, latencies, cpu, 0.0)


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
    return (f"| {result.scenario} | {result.clients} | {result.requests} | {result.rate:,.0f} "
            f"| {result.percentile(0.5) * 1000:.2f} | {result.percentile(0.99) * 1000:.2f} "
            f"| {per_request:.2f} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each scenario")
    parser.add_argument("--jobs", type=int, default=100, help="jobs the tool has")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--threads", type=int, default=16, help="the server's server.threads")
    parser.add_argument("--no-access-log", action="store_true",
                        help="server.access_log = false (it is on in production)")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 60 or not 1 <= args.clients <= 256 or not 1 <= args.jobs <= 300:
        parser.error("keep it bounded: --seconds 0-60, --clients 1-256, --jobs 1-300")

    scratch = Path(tempfile.mkdtemp(prefix="tjf-api-load-"))
    pki = Pki.create(scratch)
    context = _tls(pki)
    server = ServerProcess.start(pki=pki, scratch=scratch, threads=args.threads,
                                 access_log=not args.no_access_log)
    base = f"https://127.0.0.1:{server.port}"
    one = f"job-{args.jobs // 2:03d}"
    routes = (("GET /v1/healthz (TLS, no core call)", "/v1/healthz"),
              ("GET /v1/tool/{tool}/jobs/{name}", f"/v1/tool/{TOOL}/jobs/{one}"),
              ("GET /v1/tool/{tool}/jobs", f"/v1/tool/{TOOL}/jobs"))
    results: list[Result] = []
    try:
        asyncio.run(_populate(base, context, args.jobs))
        for scenario, path in routes:
            for clients in sorted({1, args.clients}):
                result = asyncio.run(_load(base + path, context=context, clients=clients,
                                           seconds=args.seconds, server=server,
                                           scenario=scenario))
                results.append(result)
                print(f"{scenario}, {clients} client(s): {result.rate:,.0f} req/s",
                      file=sys.stderr)
    finally:
        server.stop()

    service = direct_service(args.jobs, scratch / "homes")
    tool = service.identity(TOOL)
    direct_results = [
        direct(service, lambda: service.get(tool, one), seconds=min(args.seconds, 5),
               scenario="service.get (in process)"),
        direct(service, lambda: service.list(tool), seconds=min(args.seconds, 5),
               scenario="service.list (in process)"),
    ]

    print(f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.jobs} jobs, {args.seconds:g} s per scenario, server.threads {args.threads}, "
          f"access log {'off' if args.no_access_log else 'on'}\n")
    print("| scenario | clients | requests | req/s | p50 ms | p99 ms | server CPU ms/req |")
    print("|---|---|---|---|---|---|---|")
    for result in [*results, *direct_results]:
        print(_row(result))
    print("\nOverhead of the server over the core call (1 client: latency; CPU per request):")
    health = next(r for r in results if r.clients == 1 and "healthz" in r.scenario)
    for core, scenario in zip(direct_results, (routes[1][0], routes[2][0]), strict=True):
        served = next(r for r in results if r.clients == 1 and r.scenario == scenario)
        loaded = next(r for r in results if r.clients == args.clients and r.scenario == scenario)
        print(f"- {scenario}: p50 {served.percentile(0.5) * 1000:.2f} ms served vs "
              f"{core.percentile(0.5) * 1000:.2f} ms in process "
              f"(+{(served.percentile(0.5) - core.percentile(0.5)) * 1000:.2f} ms); "
              f"server CPU {loaded.server_cpu / loaded.requests * 1000:.2f} ms/req vs "
              f"{core.server_cpu / core.requests * 1000:.2f} ms/call; at {args.clients} "
              f"clients {loaded.rate:,.0f} req/s vs {core.rate:,.0f} calls/s in process")
    print(f"- the HTTP layer alone (healthz, 1 client): p50 {health.percentile(0.5) * 1000:.2f}"
          f" ms, {health.server_cpu / health.requests * 1000:.3f} ms server CPU per request")
    client_share = statistics.mean(r.client_cpu / r.seconds for r in results)
    print(f"- the load generator used {client_share:.0%} of a core on average (same machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
