"""Benchmark: how many pod events per second the emailer's pure pipeline digests into emails.

Run as ``.venv/bin/python bench/emailer.py [--events 100000] [--tools 1000] [--hours 2]``.
The pipeline is :class:`tjf_emailer.daemon.Pipeline`: the event model and policy
(:mod:`tjf_core.notifications`), the digest book and composing each due digest into an email
and its SMTP bytes, as the daemon does (log files and the spool are I/O and left out).

The input is a simulated watch over ``--tools`` tools with five jobs each (every kind and
emails setting): pods start, finish with exit code 0 or not, crash-loop with growing restart
counts, and are seen again (a watch repeats itself), over ``--hours`` simulated hours; due
digests are taken every simulated second. The span sets how many emails there are: a tool
gets at most one per 400 s, and over two hours nearly every tool has news in every window,
the worst case. Pod dicts are made in chunks outside the timed part.

Timed runs (``--repeat``; the best is shown, as ``timeit`` does on a shared machine) give
events/s by wall clock and by CPU time; then one run under ``tracemalloc`` (which slows it
down) gives the peak memory of the process's Python objects (the pipeline's state plus one
input chunk) and what the pipeline holds at the end (mostly what it remembers of every pod,
for de-duplication). The garbage collector runs at Python's default thresholds here, the
worst case; ``--gc-gen0 20000`` runs it as ``tjf-emailer`` does (it raises the threshold).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from tjf_emailer.daemon import Pipeline
from tjf_emailer.settings import EmailerSettings

START = datetime(2024, 5, 1, tzinfo=UTC)
#: Small, as in the daemon, which holds one pod dict at a time: a big chunk of live input
#: would make every full garbage collection slower than it is there.
CHUNK = 1_000
KINDS = ("jobs", "cronjobs", "deployments")
EMAILS = ("all", "onfinish", "onfailure")


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class _World:
    """Jobs of many tools, whose pods move on a little at every event."""

    def __init__(self, rng: random.Random, tools: int) -> None:
        self.rng = rng
        self.jobs: list[dict[str, Any]] = []
        for t in range(tools):
            tool = f"tool{t:04d}"
            for j in range(5):
                job = f"job-{j}"
                home = f"/data/project/{tool}"
                labels = {
                    "toolforge": "tool", "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
                    "app.kubernetes.io/created-by": tool, "app.kubernetes.io/name": job,
                    "app.kubernetes.io/component": KINDS[j % 3],
                    "jobs.toolforge.org/emails": EMAILS[(t + j) % 3],
                    "jobs.toolforge.org/filelog": "yes",
                }
                command = ["/bin/sh", "-c", "--",
                           f"exec 1>>{home}/{job}.out;exec 2>>{home}/{job}.err;./run.sh"]
                self.jobs.append({
                    "tool": tool, "labels": labels, "namespace": f"tool-{tool}",
                    "spec": {"containers": [{"name": "job", "command": command}]},
                    "pod": 0, "phase": 0, "restarts": 0, "status": None,
                })

    def event(self, now: datetime) -> dict[str, Any]:
        job = self.rng.choice(self.jobs)
        if job["status"] is not None and self.rng.random() < 0.3:
            pass  # the watch shows the same pod again
        elif job["phase"] == 0:
            job["pod"] += 1
            job["restarts"] = 0
            job["status"] = {"phase": "Running", "startTime": _stamp(now), "containerStatuses": [
                {"name": "job", "restartCount": 0, "state": {"running": {"startedAt": _stamp(now)}},
                 "lastState": {}}]}
            job["phase"] = 1
        elif job["labels"]["app.kubernetes.io/component"] == "deployments" and (
                self.rng.random() < 0.7):
            job["restarts"] += 1
            job["status"] = {**job["status"], "containerStatuses": [
                {"name": "job", "restartCount": job["restarts"],
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                              "finishedAt": _stamp(now)}}}]}
        else:
            code = self.rng.choice((0, 0, 0, 1, 2, 137))
            reason = "Completed" if code == 0 else ("OOMKilled" if code == 137 else "Error")
            job["status"] = {"phase": "Succeeded" if code == 0 else "Failed",
                             "startTime": job["status"]["startTime"], "containerStatuses": [
                {"name": "job", "restartCount": 0, "lastState": {}, "state": {"terminated": {
                    "exitCode": code, "reason": reason, "finishedAt": _stamp(now)}}}]}
            job["phase"] = 0
        return {
            "metadata": {"name": f"{job['labels']['app.kubernetes.io/name']}-{job['pod']}",
                         "namespace": job["namespace"], "labels": job["labels"]},
            "spec": job["spec"], "status": job["status"],
        }


def _chunks(
    events: int, tools: int, seed: int, span: timedelta,
) -> Iterator[list[tuple[datetime, dict[str, Any]]]]:
    world = _World(random.Random(seed), tools)
    step = span / events
    for first in range(0, events, CHUNK):
        chunk = []
        for number in range(first, min(first + CHUNK, events)):
            now = START + step * number
            chunk.append((now, world.event(now)))
        yield chunk


def _run(
    events: int, tools: int, seed: int, *, span: timedelta, trace: bool,
) -> dict[str, float]:
    if trace:
        tracemalloc.start()
    pipeline = Pipeline(EmailerSettings(), history_before=START)
    busy = cpu = 0.0
    emails = size = input_bytes = 0
    next_tick = START
    chunks = _chunks(events, tools, seed, span)
    while True:
        before = tracemalloc.get_traced_memory()[0] if trace else 0
        chunk = next(chunks, None)
        if chunk is None:
            break
        if trace:
            input_bytes = max(input_bytes, tracemalloc.get_traced_memory()[0] - before)
        wall, cpu_start = time.perf_counter(), time.process_time()
        for now, pod in chunk:
            pipeline.feed(pod, now=now)
            if now >= next_tick:
                next_tick = now + timedelta(seconds=1)
                for digest in pipeline.due(now=now):
                    size += len(pipeline.compose(digest, now=now).smtp_bytes())
                    emails += 1
        busy += time.perf_counter() - wall
        cpu += time.process_time() - cpu_start
        del chunk
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    held = tracemalloc.get_traced_memory()[0] if trace else 0
    if trace:
        tracemalloc.stop()
    end = START + span + timedelta(hours=1)
    for digest in pipeline.due(now=end, everything=True):
        size += len(pipeline.compose(digest, now=end).smtp_bytes())
        emails += 1
    return {"wall": events / busy, "cpu": events / cpu, "emails": emails,
            "bytes": size / max(emails, 1), "peak": peak, "input": input_bytes, "held": held}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tools", type=int, default=1_000)
    parser.add_argument("--hours", type=float, default=2.0, help="simulated span of the events")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is shown")
    parser.add_argument("--gc-gen0", type=int, default=None,
                        help="the garbage collector's first threshold (Python's default: 700)")
    args = parser.parse_args(argv)
    if args.gc_gen0 is not None:
        gc.set_threshold(args.gc_gen0, *gc.get_threshold()[1:])
    span = timedelta(hours=args.hours)
    runs = [_run(args.events, args.tools, args.seed, span=span, trace=False)
            for _ in range(args.repeat)]
    timed = max(runs, key=lambda run: run["cpu"])
    traced = _run(args.events, args.tools, args.seed, span=span, trace=True)
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{args.events:,} pod events over {args.hours:g} simulated hours, {args.tools:,} tools "
          f"x 5 jobs, seed {args.seed}, gc thresholds {gc.get_threshold()}")
    print(f"throughput (best of {args.repeat}): {timed['wall']:,.0f} events/s by wall clock, "
          f"{timed['cpu']:,.0f} by CPU time; all runs by CPU time: "
          + ", ".join(f"{run['cpu']:,.0f}" for run in runs))
    print(f"emails: {timed['emails']:,.0f} composed, {timed['bytes']:,.0f} bytes on average")
    mib = 2**20
    print(f"memory (tracemalloc): peak {traced['peak'] / mib:,.1f} MiB, of which at most "
          f"{traced['input'] / mib:,.1f} MiB is the input chunk of {CHUNK:,} pod dicts; "
          f"{traced['held'] / mib:,.1f} MiB held by the pipeline at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
