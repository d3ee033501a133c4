"""Benchmark: the local runtime's scheduling accuracy and its cost per continuous job.

Run as ``.venv/bin/python bench/local_runtime.py [--cronjobs 50] [--minutes 2]
[--continuous 100] [--idle 30]``. Everything is real: the wall clock, ``/bin/sh`` processes,
the supervisor thread with the production settings (``LocalSettings()``: 1 s tick, pidfd
wake-ups). The runtime runs inside this process, so this process's CPU time and RSS are the
supervisor's (plus an idle main thread).

1. Scheduling accuracy. ``--cronjobs`` scheduled jobs (``* * * * *``, spread over 5 tools)
   all fire at the same minute boundaries, for ``--minutes`` boundaries: 50 x 2 = 100 runs in
   about 2.5 minutes of wall time. The delay of a run is from its cron time (the minute
   boundary) to the moment its process was started (``Popen`` returned; the runtime records it
   in its run history). All jobs of a boundary start in the same supervisor round, one after
   the other, so the spread (p99) is mostly the cost of starting that many processes at once;
   the first delay of a boundary is how late the supervisor woke up.
   Every-minute schedules are the finest cron has, so there is no faster honest way than many
   jobs at the same boundaries; no clock is sped up.
2. Supervision overhead. ``--continuous`` continuous jobs running ``exec sleep 1d`` (one
   process each, no probes). After they all run, the process's CPU time is measured over
   ``--idle`` seconds (CPU %), and its RSS compared with before the jobs existed.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tjf_core.identity import ToolIdentity
from tjf_core.local import LocalRuntime, LocalSettings
from tjf_core.model import JobKind, JobSpec
from tjf_core.service import JobService
from tjf_core.settings import Settings
from tjf_core.testing import bundled_catalog

#: Room for every benchmark job (Toolforge's quota would refuse 100 continuous jobs).
BIG_QUOTA = {"spec": {"hard": {"pods": "1000", "count/jobs.batch": "1000",
                               "count/cronjobs.batch": "1000",
                               "count/deployments.apps": "1000", "limits.cpu": "1000",
                               "limits.memory": "1000Gi", "requests.cpu": "1000",
                               "requests.memory": "1000Gi"}}}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(round(fraction * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tools(runtime: LocalRuntime, count: int) -> list[ToolIdentity]:
    tools = []
    for index in range(count):
        tool = runtime.tool_identity_for(f"bench{index}")
        Path(tool.home).mkdir(parents=True, exist_ok=True)
        runtime.set_quota(tool, resource_quota=BIG_QUOTA)
        tools.append(tool)
    return tools


def scheduling(root: Path, *, cronjobs: int, minutes: int) -> None:
    with LocalRuntime(root=root / "homes", state_dir=root / "state-cron",
                      catalog=bundled_catalog()) as runtime:
        service = JobService(runtime, settings=Settings(identity=runtime.identity_settings()))
        tools = _tools(runtime, 5)
        for index in range(cronjobs):
            spec = JobSpec(name=f"cron{index}", command="true", image="bookworm",
                           schedule="* * * * *", filelog=False)
            service.run(tools[index % len(tools)], spec)
        now = datetime.now(UTC)
        first = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        last = first + timedelta(minutes=minutes - 1)
        print(f"{cronjobs} cronjobs, firing at {first:%H:%M} .. {last:%H:%M} UTC "
              f"(waiting {(last - now).total_seconds() + 5:.0f} s)", flush=True)
        time.sleep(max((last - now).total_seconds(), 0) + 5)
        delays: list[float] = []
        first_of_boundary: dict[datetime, float] = {}
        for tool in tools:
            for run in runtime.runs(tool, limit=10_000):
                boundary = run.started_at.replace(second=0, microsecond=0)
                if not first <= boundary <= last:
                    continue
                delay = (run.started_at - boundary).total_seconds()
                delays.append(delay)
                first_of_boundary[boundary] = min(first_of_boundary.get(boundary, delay), delay)
    print(f"runs measured: {len(delays)} (expected {cronjobs * minutes})")
    if delays:
        print(f"delay cron time -> process start: p50 {_percentile(delays, 0.5) * 1000:.1f} ms, "
              f"p99 {_percentile(delays, 0.99) * 1000:.1f} ms, "
              f"max {max(delays) * 1000:.1f} ms, mean {statistics.mean(delays) * 1000:.1f} ms")
        wake = ", ".join(f"{value * 1000:.1f}" for _, value in sorted(first_of_boundary.items()))
        print(f"first start of each boundary (supervisor wake-up): {wake} ms")


def overhead(root: Path, *, continuous: int, idle: float) -> None:
    with LocalRuntime(root=root / "homes", state_dir=root / "state-idle",
                      catalog=bundled_catalog(), settings=LocalSettings()) as runtime:
        service = JobService(runtime, settings=Settings(identity=runtime.identity_settings()))
        [tool] = _tools(runtime, 1)
        time.sleep(2)
        rss_before = _rss_kib()
        started = time.monotonic()
        for index in range(continuous):
            service.run(tool, JobSpec(name=f"idle{index}", command="exec sleep 1d",
                                      image="bookworm", kind=JobKind.CONTINUOUS, filelog=False))
        while True:
            pods = runtime.list_objects(tool).pods
            running = [p for p in pods if "running" in (
                p["status"].get("containerStatuses") or [{}])[0].get("state", {})]
            if len(running) == continuous:
                break
            time.sleep(0.05)
        ready = time.monotonic() - started
        time.sleep(2)  # let the start-up settle
        cpu, wall = _cpu_seconds(), time.monotonic()
        time.sleep(idle)
        cpu, wall = _cpu_seconds() - cpu, time.monotonic() - wall
        rss_after = _rss_kib()
        print(f"{continuous} continuous jobs created and running in {ready:.2f} s "
              f"({ready / continuous * 1000:.1f} ms per job, through JobService.run)")
        print(f"supervising them for {wall:.0f} s: CPU {cpu / wall * 100:.2f} % of one core "
              f"({cpu / wall / continuous * 1e6:.1f} us of CPU per job per second)")
        print(f"RSS {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB with the jobs:"
              f" {(rss_after - rss_before) / continuous:.0f} KiB per job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cronjobs", type=int, default=50)
    parser.add_argument("--minutes", type=int, default=2)
    parser.add_argument("--continuous", type=int, default=100)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--skip-scheduling", action="store_true")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if not args.skip_scheduling:
            scheduling(root, cronjobs=args.cronjobs, minutes=args.minutes)
        overhead(root, continuous=args.continuous, idle=args.idle)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
