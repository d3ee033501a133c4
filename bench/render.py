"""Benchmark: how many jobs per second render to manifests and read back.

Run as ``.venv/bin/python bench/render.py [--count 10000] [--seed 1]``. Specs are random and
valid (every kind and option, from a seeded ``random.Random``), rendered with the bundled image
catalog. Three phases, each on specs no earlier phase has seen, report specs per second:

* render only: ``render_job``;
* readback, cold: ``read_spec`` of objects whose spec annotation was never seen by this process
  (re-spelled JSON), so every read is a full parse and validation;
* round trip: ``render_job`` then ``read_spec`` of the result (what create-then-show does);
  every annotation is new to the process, so readback parses and validates it in full.
"""

from __future__ import annotations

import argparse
import gc
import importlib.resources
import json
import os
import platform
import random
import string
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.model import (
    Concurrency,
    Emails,
    HealthCheck,
    HealthCheckType,
    JobKind,
    JobSpec,
    Mount,
    PortProtocol,
)
from tjf_core.readback import read_spec
from tjf_core.render import SPEC_ANNOTATION, ToolContext, render_job
from tjf_core.settings import IdentitySettings, RenderSettings

SCHEDULES = ("@hourly", "@daily", "@weekly", "@monthly", "*/5 * * * *", "0 3 * * MON-FRI",
             "15 */2 1,15 * *", "30 4 * JAN,JUL 0")
TIMEZONES = (None, None, "UTC", "Europe/Berlin", "America/New_York")
COMMANDS = ("./run.sh", "python3 bot.py --once", "php index.php", "echo 'hi' > x; date")
LOG_PATHS = (None, "logs/out.log", "my file.out", "/data/project/bench/abs.log")


def _name(rng: random.Random) -> str:
    alphabet = string.ascii_lowercase + string.digits + "-"
    middle = "".join(rng.choices(alphabet, k=rng.randint(0, 20)))
    return rng.choice(string.ascii_lowercase) + middle.strip("-") + rng.choice("abcxyz019")


def random_spec(rng: random.Random, images: Sequence[str]) -> JobSpec:
    """One valid spec; each optional field is set about half of the time."""
    kind = rng.choice(list(JobKind))
    fields: dict[str, Any] = {
        "name": _name(rng),
        "command": f"{rng.choice(COMMANDS)} {rng.randint(0, 10**6)}",
        "image": rng.choice(images),
        "kind": kind,
        "emails": rng.choice(list(Emails)),
        "mount": rng.choice(list(Mount)),
        "memory": f"{rng.randint(64, 4096)}Mi",
        "cpu": f"{rng.randint(50, 3000)}m",
        "filelog": rng.random() < 0.8,
    }
    if fields["filelog"]:
        fields["filelog_stdout"] = rng.choice(LOG_PATHS)
        fields["filelog_stderr"] = rng.choice(LOG_PATHS)
    if kind is not JobKind.CONTINUOUS:
        fields["retry"] = rng.randint(0, 5)
        fields["timeout"] = rng.choice((None, rng.randint(1, 86400)))
    if kind is JobKind.SCHEDULED:
        fields["schedule"] = rng.choice(SCHEDULES)
        fields["timezone"] = rng.choice(TIMEZONES)
        fields["concurrency"] = rng.choice(list(Concurrency))
    if kind is JobKind.CONTINUOUS:
        fields["replicas"] = rng.randint(1, 4)
        if rng.random() < 0.5:
            fields["port"] = rng.randint(1024, 65535)
            fields["port_protocol"] = rng.choice(list(PortProtocol))
        checks: list[HealthCheck | None] = [
            None, HealthCheck(type=HealthCheckType.SCRIPT, script="test -f ok")
        ]
        if fields.get("port_protocol") is PortProtocol.TCP:
            checks.append(HealthCheck(type=HealthCheckType.HTTP, path="/healthz"))
        fields["health_check"] = rng.choice(checks)
    return JobSpec(**{key: value for key, value in fields.items() if value is not None})


def _rates(count: int, action: Callable[[], object]) -> tuple[float, float]:
    """Specs per second of wall-clock time and of this process's CPU time.

    On a shared machine the wall clock also counts other processes' turns; CPU time does not.
    """
    # The benchmark's own inputs (30,000 specs, 10,000 manifests) are not garbage: keep the
    # collector from rescanning them in every phase, as a server does not hold such a heap.
    gc.collect()
    gc.freeze()
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="specs per phase")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    catalog_text = (importlib.resources.files("tjf_core") / "data" / "images.yaml").read_text()
    catalog = ImageCatalog.from_yaml(catalog_text)
    images = [name for image in catalog.images for name in (image.shortname, *image.aliases)]
    identity = ToolIdentity.for_tool("bench", settings=IdentitySettings())
    tool = ToolContext(identity=identity, uid=51234)
    home = PurePosixPath(identity.home)
    settings = RenderSettings()
    rng = random.Random(args.seed)
    first, second, third = ([random_spec(rng, images) for _ in range(args.count)]
                            for _ in range(3))
    cold = []
    for spec in second:
        manifest = render_job(spec, tool=tool, settings=settings, catalog=catalog)[0]
        annotations = manifest["metadata"]["annotations"]
        # The same spec spelled differently: text this process has never parsed.
        annotations[SPEC_ANNOTATION] = json.dumps(json.loads(annotations[SPEC_ANNOTATION]),
                                                  indent=1)
        cold.append(manifest)

    def render_all() -> None:
        for spec in first:
            render_job(spec, tool=tool, settings=settings, catalog=catalog)

    def read_all() -> None:
        for manifest, spec in zip(cold, second, strict=True):
            if read_spec(manifest, home=home, catalog=catalog) != spec:
                raise AssertionError(f"readback changed {spec.name}")

    def round_trip_all() -> None:
        for spec in third:
            manifest = render_job(spec, tool=tool, settings=settings, catalog=catalog)[0]
            if read_spec(manifest, home=home, catalog=catalog) != spec:
                raise AssertionError(f"round trip changed {spec.name}")

    rates = {
        "render only": _rates(args.count, render_all),
        "readback cold": _rates(args.count, read_all),
        "round trip": _rates(args.count, round_trip_all),
    }
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"specs: {args.count} per phase (seed {args.seed}); specs/s by wall clock, by CPU time")
    for phase, (wall, cpu) in rates.items():
        print(f"{phase + ':':15}{wall:10,.0f} {cpu:10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
