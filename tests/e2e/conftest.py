"""Fixtures for end-to-end tests against a real Kubernetes API.

One cluster serves the whole session: it starts in seconds, but not in milliseconds. Its
binaries come from ``scripts/kube-assets``, which takes minutes the first time, so pytest
never builds them: without them the e2e tests are skipped, or fail under ``CI=true`` where a
silent skip would hide that nothing end-to-end ran.

Environment: ``TJF_TEST_KUBECONFIG`` (an admin kubeconfig: use that cluster, start none),
``TJF_KUBE_ASSETS`` (where the binaries are; default the script's cache directory).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, LocalCluster, ToolAccount

REPO = Path(__file__).resolve().parents[2]
BINARIES = ("kube-apiserver", "kube-controller-manager", "etcd")
_timings: dict[str, float] = {}


def _default_assets() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tjf" / "kube-assets" / "v1.20.2"


def _unavailable(reason: str) -> None:
    message = (
        f"{reason}; build them once with scripts/kube-assets (6-10 minutes; needs apt-get), "
        "or set TJF_TEST_KUBECONFIG to an admin kubeconfig of an existing cluster"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _find_assets() -> Path:
    directory = Path(os.environ.get("TJF_KUBE_ASSETS") or _default_assets())
    if not all((directory / name).exists() for name in BINARIES):
        _unavailable(f"no Kubernetes test binaries in {directory}")
    # --check verifies the binaries answer --version and never builds.
    done = subprocess.run(
        [str(REPO / "scripts" / "kube-assets"), "--check"],
        env={**os.environ, "TJF_KUBE_ASSETS": str(directory)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        _unavailable(f"the Kubernetes test binaries in {directory} do not work: {done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[Cluster]:
    """A running cluster with an admin client, reused by every e2e test of the session."""
    existing = os.environ.get("TJF_TEST_KUBECONFIG")
    if existing:
        cluster = Cluster(Path(existing))
        try:
            yield cluster
        finally:
            cluster.close()
        return
    local = LocalCluster(_find_assets())
    cluster = local.start()
    _timings["cluster start"] = local.start_seconds
    try:
        yield cluster
    finally:
        local.stop()


@pytest.fixture
def new_tool(kube_cluster: Cluster, tmp_path: Path) -> Iterator[Callable[[str], ToolAccount]]:
    """Provision throwaway tools; names get a random suffix so reruns on one cluster work."""
    made: list[str] = []

    def provision(prefix: str) -> ToolAccount:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        made.append(name)
        return kube_cluster.provision_tool(name, tmp_path / name)

    yield provision
    for name in made:
        kube_cluster.remove_tool(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for what, seconds in _timings.items():
        terminalreporter.write_line(f"e2e: {what} took {seconds:.1f} s")
