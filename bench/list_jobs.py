"""Benchmark: what one ``JobService.list`` costs on a real kube-apiserver, against the floor.

Run as ``.venv/bin/python bench/list_jobs.py [--sizes 10,100,200] [--repeat 30]``. It starts
its own cluster (``scripts/kube-assets`` binaries: ``TJF_KUBE_ASSETS`` or the script's cache)
unless ``TJF_TEST_KUBECONFIG`` names an admin kubeconfig, provisions one tool, removes its
ResourceQuota and gives it N jobs (a third each one-off, scheduled with one manual run, and
continuous), every one with a pod the stand-in kubelet has set running. For each N it reports:

* requests: how many API requests one listing sends, cold (a fresh runtime) and warm;
* latency, warm, interleaved with the floor: the same five list calls made with the
  ``kubernetes`` client alone (``call_api``, which preloads nothing in client 37, and
  ``json.loads``), one after the other and on five threads; ``list_objects`` is the runtime
  alone, ``service.list`` adds readback and status;
* cold: the first listing of a fresh runtime (credentials, TLS, discovery, catalog file)
  and the first five lists of a fresh floor client, then one warm listing.

``--profile`` prints where the time of ``service.list`` goes at the largest N (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from kubernetes.config import new_client_from_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.e2e.cluster

from tests.e2e.cluster import Cluster, LocalCluster, ToolAccount, poll

from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.kube import KubernetesRuntime, KubeSettings
from tjf_core.kube.objects import KINDS, MANAGED_SELECTOR, cronjob_kind, prepared_body
from tjf_core.model import JobKind, JobSpec
from tjf_core.render import ToolContext, render_job
from tjf_core.restart import render_manual_run
from tjf_core.service import JobService
from tjf_core.settings import RenderSettings

IMAGES_FILE = Path(__file__).resolve().parents[1] / "src" / "tjf_core" / "data" / "images.yaml"
KIND_CYCLE = (JobKind.ONE_OFF, JobKind.SCHEDULED, JobKind.CONTINUOUS)
SCHEDULES = ("@daily", "@weekly", "17 3 * * *", "0 */6 * * MON-FRI")


@contextmanager
def cluster_for_bench() -> Iterator[Cluster]:
    """The cluster of ``TJF_TEST_KUBECONFIG``, else a new one as the e2e tests start it."""
    existing = os.environ.get("TJF_TEST_KUBECONFIG")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    local = None if existing else LocalCluster(Path(
        os.environ.get("TJF_KUBE_ASSETS") or Path(cache) / "tjf" / "kube-assets" / "v1.20.2"))
    cluster = local.start() if local is not None else Cluster(Path(str(existing)))
    try:
        yield cluster
    finally:
        if local is None:
            cluster.close()
        else:
            local.stop()


class Population:
    """Adds jobs to the tool as admin: rendered by the core, posted raw (faster than run)."""

    def __init__(self, cluster: Cluster, tool: ToolIdentity) -> None:
        self.cluster, self.tool, self.count = cluster, tool, 0
        self.catalog = ImageCatalog.from_yaml(IMAGES_FILE.read_text())
        self.images = [image.shortname for image in self.catalog.stable()]
        served = cluster.admin.get("/apis/batch/v1").get("resources") or ()
        v1 = any(r.get("name") == "cronjobs" for r in served)
        self.cronjob = cronjob_kind("batch/v1" if v1 else "batch/v1beta1")
        ns = tool.namespace
        # 200 jobs do not fit a tool's quota (4 pods, 15 jobs, 3 deployments).
        cluster.admin.delete(f"/api/v1/namespaces/{ns}/resourcequotas/{ns}")

    def spec(self, index: int) -> JobSpec:
        kind = KIND_CYCLE[index % 3]
        return JobSpec(
            name=f"job-{index:03d}", command=f"./run.sh --item {index}",
            image=self.images[index % len(self.images)], kind=kind,
            schedule=SCHEDULES[index % len(SCHEDULES)] if kind is JobKind.SCHEDULED else None,
            filelog=index % 2 == 0,
        )

    def grow_to(self, total: int) -> None:
        context = ToolContext(identity=self.tool, uid=None)
        ns, admin = self.tool.namespace, self.cluster.admin
        for index in range(self.count, total):
            for manifest in render_job(self.spec(index), tool=context,
                                       settings=RenderSettings(), catalog=self.catalog):
                kind = self.cronjob if manifest["kind"] == "CronJob" else KINDS[manifest["kind"]]
                live = admin.create(kind.collection(ns),
                                    prepared_body(manifest, kind=kind, namespace=ns))
                if kind.kind == "CronJob":  # its pod: a manual run, as `restart` makes
                    run = render_manual_run(live, now=datetime.now(UTC))
                    admin.create(KINDS["Job"].collection(ns), run)
        self.count = total
        pods_path = f"/api/v1/namespaces/{ns}/pods?labelSelector={MANAGED_SELECTOR}"
        pending: list[str] = []

        def every_job_has_a_pod() -> bool:
            pods = admin.get(pods_path)["items"]
            pending[:] = [p["metadata"]["name"] for p in pods
                          if p.get("status", {}).get("phase") != "Running"]
            return len(pods) >= total

        poll(f"{total} pods", every_job_has_a_pod, timeout=300)
        for pod in pending:
            self.cluster.kubelet.run(ns, pod)
        time.sleep(2)  # let the controllers write the status and events that follow


class Floor:
    """The five list calls with the ``kubernetes`` client alone: raw bytes and json.loads."""

    def __init__(self, account: ToolAccount, *, cronjob_version: str) -> None:
        # The config loader is untyped; what it returns is an ApiClient.
        self.client = new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(account.kubeconfig), persist_config=False)
        base = f"{self.client.configuration.host}/%s/namespaces/{account.namespace}/%s"
        managed = f"?labelSelector={MANAGED_SELECTOR}"
        self.urls = [base % ("apis/batch/v1", "jobs" + managed),
                     base % (f"apis/{cronjob_version}", "cronjobs" + managed),
                     base % ("apis/apps/v1", "deployments" + managed),
                     base % ("api/v1", "pods" + managed), base % ("api/v1", "events")]
        self.pool = ThreadPoolExecutor(len(self.urls), thread_name_prefix="floor")

    def get(self, url: str) -> Any:
        response = self.client.call_api("GET", url, header_params={"Accept": "application/json"})
        return json.loads(response.read())

    def sequential(self) -> None:
        for url in self.urls:
            self.get(url)

    def parallel(self) -> None:
        list(self.pool.map(self.get, self.urls))

    def close(self) -> None:
        self.pool.shutdown()
        self.client.close()


def elapsed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def new_runtime(hook: Callable[[str, str], None] | None = None) -> KubernetesRuntime:
    return KubernetesRuntime(KubeSettings(images_file=str(IMAGES_FILE)), request_hook=hook)


def measure(size: int, *, tool: ToolIdentity, account: ToolAccount, cronjob_version: str,
            repeat: int, fresh: int) -> dict[str, Any]:
    requests: list[str] = []
    runtime = new_runtime(lambda method, path: requests.append(f"{method} {path}"))
    service = JobService(runtime)
    listing = service.list(tool)
    cold_requests = list(requests)
    requests.clear()
    service.list(tool)
    warm_requests = len(requests)
    states = Counter(job.status.short.value for job in listing.jobs)
    if len(listing.jobs) != size or listing.warnings:
        raise AssertionError(f"listed {len(listing.jobs)} of {size} jobs: {listing.warnings}")
    floor = Floor(account, cronjob_version=cronjob_version)
    contenders: dict[str, Callable[[], object]] = {
        "service.list": lambda: service.list(tool),
        "list_objects": lambda: runtime.list_objects(tool),
        "floor seq": floor.sequential,
        "floor par": floor.parallel,
    }
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeat + 3):  # three warm-up rounds
        # Each round starts with another contender, so none always follows the same one.
        for name in names[round_ % 4:] + names[:round_ % 4]:
            took = elapsed(contenders[name])
            if round_ >= 3:
                times[name].append(took)
    floor.close()
    cold: dict[str, list[float]] = {"runtime cold": [], "runtime warm": [], "floor cold": []}
    for _ in range(fresh):
        fresh_runtime = new_runtime()
        fresh_service = JobService(fresh_runtime)
        cold["runtime cold"].append(elapsed(partial(fresh_service.list, tool)))
        cold["runtime warm"].append(elapsed(partial(fresh_service.list, tool)))
        fresh_runtime.close()
        started = time.perf_counter()
        fresh_floor = Floor(account, cronjob_version=cronjob_version)
        fresh_floor.sequential()
        cold["floor cold"].append(time.perf_counter() - started)
        fresh_floor.close()
    runtime.close()
    return {"size": size, "cold_requests": cold_requests, "warm_requests": warm_requests,
            "states": states, "times": times, "cold": cold}


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(results: Sequence[dict[str, Any]], *, repeat: int, fresh: int, server: str,
           load_before: str) -> None:
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, Python {platform.python_version()}; "
          f"load average {load_before} before, {load()} after")
    print(f"kube-apiserver {server} on loopback; warm times over {repeat} interleaved rounds, "
          f"cold over {fresh} fresh clients; milliseconds")
    print("\nrequests per JobService.list (target: the same for every N, <= 6)")
    for result in results:
        cold = result["cold_requests"]
        print(f"  N={result['size']:<4} cold {len(cold)}, warm {result['warm_requests']}   "
              f"states: {dict(sorted(result['states'].items()))}")
    print("  cold requests: " + "; ".join(results[0]["cold_requests"]))
    print("\nwarm latency, median / p90 (target: service.list <= 1.5x floor)")
    names = list(results[0]["times"])
    print(f"  {'N':>4} " + "".join(f"{name:>20}" for name in names)
          + f"{'x floor seq':>13}{'x floor par':>13}{'service-objects':>17}")
    for result in results:
        times = result["times"]
        median = {name: statistics.median(times[name]) for name in names}
        cells = "".join(f"{ms(median[name])} / {ms(statistics.quantiles(times[name], n=10)[-1])}"
                        for name in names)
        print(f"  {result['size']:>4} {cells}"
              f"{median['service.list'] / median['floor seq']:>12.2f}x"
              f"{median['service.list'] / median['floor par']:>12.2f}x"
              f"{ms(median['service.list'] - median['list_objects']):>17}")
    print("\ncold and warm first calls, median / max")
    print(f"  {'N':>4} " + "".join(f"{name:>20}" for name in results[0]["cold"]))
    for result in results:
        cells = "".join(f"{ms(statistics.median(v))} / {ms(max(v))}"
                        for v in result["cold"].values())
        print(f"  {result['size']:>4} {cells}")


def profile(tool: ToolIdentity, *, repeat: int) -> None:
    """Main thread only: the five lists show as the wait for their futures."""
    runtime = new_runtime()
    service = JobService(runtime)
    for title, calls, lines in (("the cold first", 1, 15), (f"{repeat} warm", repeat, 30)):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            service.list(tool)
        profiler.disable()
        print(f"\nprofile of {title} service.list (cumulative)")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(lines)
    runtime.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,200", help="job counts, ascending")
    parser.add_argument("--repeat", type=int, default=30, help="warm rounds per size")
    parser.add_argument("--fresh", type=int, default=5, help="fresh clients per size")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    load_before = load()
    results = []
    with cluster_for_bench() as cluster, tempfile.TemporaryDirectory() as home:
        name = f"bench-{uuid.uuid4().hex[:6]}"
        account = cluster.provision_tool(name, Path(home) / name)
        tool = ToolIdentity(tool=name, namespace=account.namespace,
                            home=PurePosixPath(account.home))
        try:
            population = Population(cluster, tool)
            server = cluster.admin.get("/version")["gitVersion"]
            for size in sizes:
                print(f"N={size}: populated in {elapsed(partial(population.grow_to, size)):.1f} s",
                      file=sys.stderr)
                results.append(measure(size, tool=tool, account=account,
                                       cronjob_version=population.cronjob.api_version,
                                       repeat=args.repeat, fresh=args.fresh))
            report(results, repeat=args.repeat, fresh=args.fresh, server=server,
                   load_before=load_before)
            if args.profile:
                profile(tool, repeat=args.repeat)
        finally:
            cluster.remove_tool(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
