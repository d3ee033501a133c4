"""What the service remembers of read-back jobs never outlives the objects it was read from."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Harness, HarnessFactory
from tjf_core.images import ImageCatalog
from tjf_core.runtime import Runtime
from tjf_core.testing import InMemoryRuntime, bundled_catalog
from tjf_http.runtimes import SlowRuntime

JOBS = "/v1/tool/alpha/jobs"
WEB = {"name": "web", "cmd": "./serve", "imagename": "bookworm", "continuous": True}


def _web(h: Harness) -> dict[str, Any]:
    reply = h.tls().get(f"{JOBS}/web")
    assert reply.status == 200, reply.body
    job: dict[str, Any] = reply.json()["job"]
    return job


def test_a_changed_object_is_read_again(h: Harness) -> None:
    assert h.tls().post(JOBS, json_body=WEB).status == 201
    first = _web(h)
    assert first["command"] == "./serve"
    assert first["status"]["up_to_date"] is True
    assert _web(h) == first  # read twice, the same (the second time from memory)
    assert h.tls().request("PATCH", JOBS, json_body={**WEB, "cmd": "./serve --v2"}).status == 200
    assert _web(h)["command"] == "./serve --v2"
    # An edit by hand (a new resourceVersion) that the spec no longer renders to.
    h.runtime.patch(h.tool(), kind="Deployment", name="web", patch={"spec": {"replicas": 3}})
    assert _web(h)["status"]["up_to_date"] is False
    listed = h.tls().get(JOBS).json()["jobs"]
    assert [job["status"]["up_to_date"] for job in listed] == [False]


class _NewCatalogs(SlowRuntime):
    """The fake runtime, with a catalog that can be refreshed (as the cluster's ConfigMap)."""

    def __init__(self, inner: Runtime) -> None:
        super().__init__(inner, delay=0.0)
        self.catalog = bundled_catalog()

    def image_catalog(self) -> ImageCatalog:
        return self.catalog


def test_a_refreshed_catalog_is_read_with(make_harness: HarnessFactory) -> None:
    wrapped: list[_NewCatalogs] = []

    def wrap(runtime: InMemoryRuntime) -> Runtime:
        wrapped.append(_NewCatalogs(runtime))
        return wrapped[0]

    h = make_harness(wrap=wrap)
    assert h.tls().post(JOBS, json_body=WEB).status == 201
    assert _web(h)["status"]["up_to_date"] is True
    # The same object, but bookworm left the catalog: its spec no longer renders.
    wrapped[0].catalog = ImageCatalog.from_yaml(
        _catalog_text().replace("bookworm", "trixie"))
    job = _web(h)
    assert job["image_state"] == "unknown"
    assert job["status"]["up_to_date"] is False


def _catalog_text() -> str:
    import importlib.resources

    return (importlib.resources.files("tjf_core") / "data" / "images.yaml").read_text("utf-8")
