"""The route table is complete and consistent, and it is what the app serves."""

from __future__ import annotations

from collections import defaultdict

from tjf_core.service import JobService
from tjf_core.testing import InMemoryRuntime
from tjf_http.app import make_app
from tjf_http.operations import OPERATIONS
from tjf_http.routes import ROUTES, SHAPES
from tjf_http.settings import HttpSettings

#: What the legacy flavour can render (it refuses plans and upserts).
LEGACY_OPERATIONS = {"list_jobs", "create_job", "flush_jobs", "get_job", "delete_job",
                     "restart_job", "job_logs", "list_images", "get_quota"}


def test_every_route_runs_a_known_operation_with_known_shapes() -> None:
    for route in ROUTES:
        assert route.operation in OPERATIONS or route.operation in ("metrics", "openapi"), route
        assert route.responses, route
        assert set(route.responses.values()) <= set(SHAPES), route
        assert not route.path.endswith("/"), route


def test_legacy_routes_only_run_what_legacy_renders() -> None:
    used = {route.operation for route in ROUTES if route.flavour == "legacy"}
    assert used == LEGACY_OPERATIONS


def test_no_route_is_declared_twice() -> None:
    keys = [(route.method, route.path) for route in ROUTES]
    assert len(keys) == len(set(keys))


def test_the_app_serves_every_route_with_and_without_a_trailing_slash() -> None:
    app = make_app(JobService(InMemoryRuntime()), HttpSettings())
    served: dict[str, set[str]] = defaultdict(set)
    for resource in app.router.resources():
        for served_route in resource:
            served[resource.canonical].add(served_route.method)
    for route in ROUTES:
        assert route.method in served[route.path], route
        assert route.method in served[route.path + "/"], route


def test_the_seed_and_2023_paths_are_all_there() -> None:
    paths = {(route.method, route.path) for route in ROUTES if route.flavour == "legacy"}
    assert paths == {
        ("POST", "/api/v1/run"), ("GET", "/api/v1/show/{name}"),
        ("DELETE", "/api/v1/delete/{name}"), ("GET", "/api/v1/list"),
        ("DELETE", "/api/v1/flush"), ("GET", "/api/v1/containers"), ("GET", "/api/v1/images"),
        ("POST", "/api/v1/restart/{name}"), ("GET", "/api/v1/quota"),
        ("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs"), ("DELETE", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/{name}"), ("DELETE", "/api/v1/jobs/{name}"),
        ("POST", "/api/v1/jobs/{name}/restart"), ("GET", "/api/v1/jobs/{name}/logs"),
    }
