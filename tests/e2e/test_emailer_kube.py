"""The emailer against the real apiserver: jobs made by JobService, pods moved by the kubelet
stand-in, emails received by a real SMTP server (aiosmtpd).

Each emailer runs its own event loop in a thread (:class:`Running`), as the process would,
while the test drives the cluster synchronously. Digests wait 1 s (``group_wait``), Leases
last 2 s, so the whole file takes well under a minute.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiosmtpd.controller import Controller

from tests.e2e.cluster import Cluster, ToolAccount, poll
from tests.e2e.test_contract_kube import IMAGES_FILE, identity
from tests.emailer.conftest import HOST, Recorder, free_port, settings_for
from tjf_core.kube import CredentialStore, KubernetesRuntime, KubeSettings
from tjf_core.model import Emails, JobSpec
from tjf_core.notification_digest import DigestSettings
from tjf_core.notification_mail import MailAddressing
from tjf_core.service import JobService
from tjf_emailer.__main__ import Emailer
from tjf_emailer.kube import WatchItem, pod_watch
from tjf_emailer.kubeapi import KubeApi
from tjf_emailer.leader import HANDOFF_ANNOTATION, Handoff
from tjf_emailer.settings import ClusterSettings, EmailerSettings

NewTool = Callable[[str], ToolAccount]
DOMAIN = "example.org"


@attrs.frozen
class Mail:
    to: str
    subject: str
    body: str


class Inbox:
    """A real SMTP server and what it received, parsed."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        self._controller = Controller(self.recorder, hostname=HOST, port=self.port)

    def mails(self) -> list[Mail]:
        found = []
        for data in list(self.recorder.messages):
            message = message_from_bytes(data, policy=default)
            assert isinstance(message, EmailMessage)
            found.append(Mail(str(message["To"]), str(message["Subject"]),
                              message.get_content()))
        return found

    def lines(self, tool: str) -> list[str]:
        """The event lines of every email to ``tool`` (with the job heading before each)."""
        found = []
        for mail in self.mails():
            if mail.to != f"tools.{tool}@{DOMAIN}":
                continue
            job = ""
            for line in mail.body.splitlines():
                if line.startswith('Job "'):
                    job = line.split('"')[1]
                elif line.startswith("  - "):
                    found.append(f"{job}: {line.split(': ', 1)[1].split(' (pod ')[0]}")
        return found


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    box._controller.start()
    try:
        yield box
    finally:
        box._controller.stop()


@pytest.fixture
def api(kube_cluster: Cluster) -> Iterator[KubeApi]:
    client = KubeApi.from_kubeconfig(kube_cluster.admin_kubeconfig)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def service() -> Iterator[JobService]:
    runtime = KubernetesRuntime(KubeSettings(images_file=str(IMAGES_FILE)))
    try:
        yield JobService(runtime)
    finally:
        runtime.close()


@pytest.fixture
def home_namespace(kube_cluster: Cluster) -> Iterator[str]:
    """The emailer's own namespace (its Lease and ConfigMap)."""
    name = f"tjf-emailer-{uuid.uuid4().hex[:6]}"
    kube_cluster.admin.create("/api/v1/namespaces", {"metadata": {"name": name}})
    try:
        yield name
    finally:
        kube_cluster.admin.delete(f"/api/v1/namespaces/{name}")


def emailer_settings(inbox: Inbox, spool: Path, *, namespace: str, watch: str,
                     **cluster: Any) -> EmailerSettings:
    base = settings_for(inbox.port, spool)
    return attrs.evolve(
        base,
        addressing=MailAddressing(from_addr=f"noreply@{DOMAIN}", to_prefix="tools",
                                  to_domain=DOMAIN),
        digest=DigestSettings(group_wait=_seconds(1), group_interval=_seconds(1)),
        watch=attrs.evolve(base.watch, pods_timeout=5.0),
        logs=attrs.evolve(base.logs, lines=0),
        cluster=ClusterSettings(**{
            "namespace": namespace, "watch_namespaces": (watch,), "health_port": 0,
            "health_address": HOST, "lease_duration": 2.0, "renew_deadline": 1.5,
            "retry_period": 0.2, "shutdown_grace": 5.0, **cluster}),
    )


def _seconds(value: float) -> Any:
    from datetime import timedelta
    return timedelta(seconds=value)


class Running:
    """An :class:`Emailer` serving in a thread of its own, with its own event loop."""

    def __init__(self, emailer: Emailer) -> None:
        self.emailer = emailer
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _serve(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._task = asyncio.current_task()
            self._ready.set()
            await self.emailer.run(self._stop)

        try:
            self._loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            self._loop.close()

    def stop(self) -> None:
        """As on SIGTERM: finish cleanly and release the Lease."""
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._join()

    def crash(self) -> None:
        """Stop at once, releasing nothing: the Lease is left to expire."""
        assert self._task is not None
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._join()

    def _join(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive(), "the emailer did not stop"
        assert self.error is None, repr(self.error)


@pytest.fixture
def running() -> Iterator[Callable[[Emailer], Running]]:
    started: list[Running] = []

    def start(emailer: Emailer) -> Running:
        started.append(Running(emailer))
        return started[-1]

    yield start
    for run in started:
        if run._thread.is_alive():
            run.crash()


def pod_of(cluster: Cluster, account: ToolAccount, job: str) -> str:
    """The name of the pod the Job controller made for ``job`` (waiting for it)."""
    found: list[str] = []

    def made() -> bool:
        pods = cluster.admin.get(f"/api/v1/namespaces/{account.namespace}/pods")["items"]
        found[:] = [p["metadata"]["name"] for p in pods
                    if p["metadata"]["labels"].get("app.kubernetes.io/name") == job]
        return bool(found)

    poll(f"a pod of job {job}", made)
    return found[0]


def run_job(service: JobService, account: ToolAccount, name: str, emails: Emails) -> None:
    service.run(identity(account), JobSpec(name=name, command="./work", image="bookworm",
                                           emails=emails))


def handed_over(cluster: Cluster, namespace: str) -> int:
    """The pod version the Lease's hand-over says was spooled (0: none)."""
    lease = cluster.admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}"
                              "/leases/tjf-emailer")
    handoff = Handoff.decode(lease["metadata"].get("annotations", {}).get(HANDOFF_ANNOTATION))
    return int(handoff.resource_version or 0) if handoff is not None else 0


def watching(emailer: Emailer) -> bool:
    return emailer.is_leader() and emailer.stats.lists > 0


def test_emails_follow_each_jobs_policy_in_one_digest(
    kube_cluster: Cluster, new_tool: NewTool, service: JobService, api: KubeApi,
    inbox: Inbox, home_namespace: str, tmp_path: Path, running: Callable[[Emailer], Running],
) -> None:
    account = new_tool("mails")
    # Four: the tool's quota allows four pods at once.
    jobs = {"every": Emails.ALL, "finish": Emails.ONFINISH, "broken": Emails.ONFAILURE,
            "quiet": Emails.NONE}
    for name, emails in jobs.items():
        run_job(service, account, name, emails)
    pods = {name: pod_of(kube_cluster, account, name) for name in jobs}
    settings = emailer_settings(inbox, tmp_path / "spool", namespace=home_namespace,
                                watch=account.namespace)
    settings = attrs.evolve(settings, digest=attrs.evolve(settings.digest,
                                                          group_wait=_seconds(3)))
    emailer = running(Emailer(settings, api=api, identity="solo"))
    poll("the emailer to watch", lambda: watching(emailer.emailer))
    kubelet, namespace = kube_cluster.kubelet, account.namespace
    for pod in pods.values():
        kubelet.run(namespace, pod)
    for name in ("every", "finish"):
        kubelet.succeed(namespace, pods[name])
    kubelet.fail(namespace, pods["broken"], exit_code=3)
    kubelet.fail(namespace, pods["quiet"], exit_code=3)
    expected = sorted([
        "every: started running", "every: finished successfully, exit code 0 (Completed)",
        "finish: finished successfully, exit code 0 (Completed)",
        "broken: failed, exit code 3 (Error)",
    ])
    poll("the digest", lambda: len(inbox.lines(account.name)) >= len(expected))
    emailer.stop()
    assert sorted(inbox.lines(account.name)) == expected
    [mail] = inbox.mails()
    assert mail.to == f"tools.{account.name}@{DOMAIN}"
    assert mail.subject == f"[Toolforge] [{account.name}] notification about 3 jobs"
    assert inbox.recorder.envelopes == [(f"noreply@{DOMAIN}", [mail.to])]
    registry = emailer.emailer.metrics.registry
    assert registry.get_sample_value("tjf_emailer_emails_sent_total") == 1


def _etcd_url() -> str | None:
    """The client URL of the etcd that this test session started (None: not ours)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == me and args[0].endswith(b"/etcd"):
            for arg in args:
                if arg.startswith(b"--listen-client-urls="):
                    return arg.split(b"=", 1)[1].decode().split(",")[0]
    return None


def _etcd(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        found: dict[str, Any] = json.load(answer)
        return found


class CompactingApi(KubeApi):
    """Runs ``meanwhile`` once, right after the first page of a list was answered."""

    def __init__(self, kubeconfig: Path, meanwhile: Callable[[], None]) -> None:
        store = CredentialStore(KubeSettings(service_kubeconfig=str(kubeconfig)))
        super().__init__(store.service, close=store.close)
        self._meanwhile: Callable[[], None] | None = meanwhile

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = super().request(method, path, **kwargs)
        query = kwargs.get("query") or {}
        if self._meanwhile is not None and "limit" in query and "continue" not in query:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        return answer


def test_a_list_that_expires_is_listed_again_with_the_current_state(
    kube_cluster: Cluster, new_tool: NewTool, service: JobService,
) -> None:
    url = _etcd_url()
    if url is None:
        pytest.skip("compacting etcd needs the cluster this session started")
    account = new_tool("gone")
    names = ("one", "two", "three")
    for name in names:
        run_job(service, account, name, Emails.ALL)
    pods = {name: pod_of(kube_cluster, account, name) for name in names}

    def fail_and_forget() -> None:
        # A pod changes while the list pauses, then etcd forgets the history: the paging
        # token the next page is asked with is too old (410 Gone from the apiserver).
        kube_cluster.kubelet.fail(account.namespace, pods["three"], exit_code=3)
        revision = _etcd(url, "/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
        _etcd(url, "/v3/kv/compaction", {"revision": revision["header"]["revision"],
                                         "physical": True})

    api = CompactingApi(kube_cluster.admin_kubeconfig, fail_and_forget)
    watch = pod_watch(api, namespaces=[account.namespace], page_size=1)

    async def until_synced() -> list[WatchItem]:
        items = []
        async for item in watch:
            items.append(item)
            if item.type == "SYNCED":
                break
        return items

    try:
        items = asyncio.run(asyncio.wait_for(until_synced(), 30))
    finally:
        api.close()
    assert watch.stats.relists == 1
    listed = {i.object["metadata"]["name"]: i.object for i in items if i.type == "LISTED"}
    assert sorted(listed) == sorted(pods.values())
    # The pod that changed during the gap is seen as it is now.
    assert listed[pods["three"]]["status"]["phase"] == "Failed"
    # Stopping shuts the open watch's socket down: its thread ends without waiting it out.
    poll("the watch's thread to end", lambda: not any(t.is_alive() for t in watch.threads),
         timeout=5)


def test_two_emailers_send_each_email_once_and_the_standby_takes_over(
    kube_cluster: Cluster, new_tool: NewTool, service: JobService, api: KubeApi,
    inbox: Inbox, home_namespace: str, tmp_path: Path, running: Callable[[Emailer], Running],
) -> None:
    account = new_tool("lease")
    names = ("first", "second", "third")
    for name in (*names, "fine"):
        run_job(service, account, name, Emails.ONFAILURE)
    pods = {name: pod_of(kube_cluster, account, name) for name in (*names, "fine")}

    def emailer(who: str) -> Emailer:
        settings = emailer_settings(inbox, tmp_path / who, namespace=home_namespace,
                                    watch=account.namespace)
        return Emailer(settings, api=api, identity=who)

    def failed(name: str) -> None:
        kube_cluster.kubelet.fail(account.namespace, pods[name], exit_code=3)
        poll(f"the email about {name}",
             lambda: f"{name}: failed, exit code 3 (Error)" in inbox.lines(account.name))

    a = running(emailer("a"))
    poll("a to lead", lambda: watching(a.emailer))
    b = running(emailer("b"))
    poll("b to campaign", lambda: b.emailer.elector is not None
         and b.emailer.elector.last_contact is not None)
    kube_cluster.kubelet.succeed(account.namespace, pods["fine"])  # onfailure: no email
    failed("first")
    assert not b.emailer.is_leader()

    a.stop()  # releases the Lease: b takes over at its next try
    poll("b to lead", lambda: watching(b.emailer))
    failed("second")

    again = running(emailer("a"))
    poll("a to campaign again", lambda: again.emailer.elector is not None
         and again.emailer.elector.last_contact is not None)
    # A crash repeats what happened after the leader's last renewal (its hand-over): wait
    # for the renewal that says the second email was spooled.
    pod = f"/api/v1/namespaces/{account.namespace}/pods/{pods['second']}"
    failed_at = int(kube_cluster.admin.get(pod)["metadata"]["resourceVersion"])
    poll("b to hand over past the second failure",
         lambda: handed_over(kube_cluster, home_namespace) >= failed_at)
    b.crash()  # the Lease is left to expire
    poll("a to lead after the Lease expired", lambda: watching(again.emailer), timeout=20)
    failed("third")
    again.stop()
    assert sorted(inbox.lines(account.name)) == sorted(
        f"{name}: failed, exit code 3 (Error)" for name in names)
    assert len(inbox.mails()) == 3
