"""Benchmark: from a job's pod failing to its email arriving, through a real apiserver.

Run as ``.venv/bin/python bench/emailer_latency.py [--runs 10] [--group-wait 1]``. It starts
the end-to-end tests' control plane (``tests/e2e/cluster.py``; the binaries must be built, see
``scripts/kube-assets``), provisions one tool, and runs the emailer (:class:`tjf_emailer.
__main__.Emailer`, with its Lease and pod watch) against it and a local aiosmtpd server. Each
run creates a one-off job with ``--emails onfailure``, waits for the Job controller's pod, then
times from the kubelet stand-in's patch of ``pods/status`` (exit code 3) to the email being
accepted by the SMTP server. ``group_interval`` is 0, so only ``group_wait`` holds a digest
back; the sender's round (``task_send_emails_loop_sleep``, ``--send-round``) adds up to its
length, so production (10 s) sees up to that much more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import attrs
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.cluster import Cluster, LocalCluster, poll
from tests.e2e.test_contract_kube import identity
from tests.emailer.conftest import HOST, Recorder, free_port

from tjf_core.kube import KubernetesRuntime, KubeSettings
from tjf_core.model import Emails, JobSpec
from tjf_core.notification_digest import DigestSettings
from tjf_core.service import JobService
from tjf_emailer.__main__ import Emailer
from tjf_emailer.kubeapi import KubeApi
from tjf_emailer.settings import ClusterSettings, EmailerSettings

IMAGES = Path(__file__).resolve().parents[1] / "src" / "tjf_core" / "data" / "images.yaml"


def _assets() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("TJF_KUBE_ASSETS") or Path(cache) / "tjf/kube-assets/v1.20.2")


def _settings(args: argparse.Namespace, *, port: int, spool: Path, watch: str,
              home: str) -> EmailerSettings:
    base = EmailerSettings()
    return attrs.evolve(
        base,
        smtp=attrs.evolve(base.smtp, host=HOST, port=port, timeout=5.0),
        send=attrs.evolve(base.send, spool_dir=spool, for_real=True,
                          round_seconds=args.send_round),
        digest=DigestSettings(group_wait=timedelta(seconds=args.group_wait),
                              group_interval=timedelta(0)),
        logs=attrs.evolve(base.logs, lines=0),
        cluster=ClusterSettings(namespace=home, watch_namespaces=(watch,), health_port=0,
                                health_address=HOST),
    )


def _pod_of(cluster: Cluster, namespace: str, job: str) -> str:
    pods: list[str] = []

    def made() -> bool:
        found = cluster.admin.get(f"/api/v1/namespaces/{namespace}/pods")
        pods[:] = [p["metadata"]["name"] for p in found["items"]
                   if p["metadata"]["labels"].get("app.kubernetes.io/name") == job]
        return bool(pods)

    poll(f"the pod of {job}", made)
    return pods[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--group-wait", type=float, default=1.0)
    parser.add_argument("--send-round", type=float, default=0.1,
                        help="task_send_emails_loop_sleep, seconds")
    args = parser.parse_args(argv)
    local = LocalCluster(_assets())
    cluster = local.start()
    scratch = Path(tempfile.mkdtemp(prefix="tjf-latency-"))
    recorder = Recorder()
    smtp = Controller(recorder, hostname=HOST, port=free_port())
    smtp.start()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runtime = KubernetesRuntime(KubeSettings(images_file=str(IMAGES)))
    try:
        account = cluster.provision_tool("latency", scratch / "latency")
        cluster.admin.create("/api/v1/namespaces", {"metadata": {"name": "tjf-emailer"}})
        api = KubeApi.from_kubeconfig(cluster.admin_kubeconfig)
        emailer = Emailer(_settings(args, port=smtp.port, spool=scratch / "spool",
                                    watch=account.namespace, home="tjf-emailer"),
                          api=api, identity="bench")
        thread = threading.Thread(target=loop.run_until_complete, args=(emailer.run(stop),),
                                  daemon=True)
        thread.start()
        poll("the emailer to watch", lambda: emailer.is_leader() and emailer.stats.lists > 0)
        service = JobService(runtime)
        tool = identity(account)
        latencies = []
        for run in range(args.runs):
            name = f"fail{run}"
            service.run(tool, JobSpec(name=name, command="./x", image="bookworm",
                                      emails=Emails.ONFAILURE))
            pod = _pod_of(cluster, account.namespace, name)
            before = len(recorder.messages)
            start = time.perf_counter()
            cluster.kubelet.fail(account.namespace, pod, exit_code=3)
            # Polled tightly: poll()'s 50 ms steps would blur the measure.
            while len(recorder.messages) <= before:
                if time.perf_counter() - start > 60:
                    raise TimeoutError(f"no email about {name} within 60 s")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - start)
            print(f"run {run + 1}: {latencies[-1]:.3f} s", flush=True)
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        print(f"pod failure -> email, group_wait {args.group_wait:g} s, send round "
              f"{args.send_round:g} s, {args.runs} runs: p50 {statistics.median(latencies):.3f} s, "
              f"p90 {cuts[89]:.3f} s, max {max(latencies):.3f} s, "
              f"min {min(latencies):.3f} s")
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        api.close()
    finally:
        runtime.close()
        smtp.stop()
        local.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
