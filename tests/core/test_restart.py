from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.core.test_render import GOLDEN_CASES, PY311, container, render
from tests.k8s_schema import assert_valid
from tjf_core.errors import InvalidJobError
from tjf_core.render import Manifest
from tjf_core.restart import (
    MANUAL_RUN_ANNOTATION,
    RESTART_ANNOTATION,
    render_manual_run,
    render_restart_patch,
)


def live_cronjob() -> Manifest:
    cron = render(GOLDEN_CASES["scheduled-batch-v1"][0])[0]
    cron["metadata"]["uid"] = "6f1c2c1e-0000-4000-8000-000000000001"
    return cron


def test_manual_run_job() -> None:
    cron = live_cronjob()
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = render_manual_run(cron, now=now)
    assert_valid(job)
    assert job["metadata"]["name"] == "daily-update-1704164645"
    assert job["metadata"]["namespace"] == "tool-mytool"
    assert job["metadata"]["annotations"] == {MANUAL_RUN_ANNOTATION: "manual"}
    assert job["metadata"]["labels"] == cron["spec"]["jobTemplate"]["metadata"]["labels"]
    assert job["metadata"]["ownerReferences"] == [{
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "daily-update",
        "uid": "6f1c2c1e-0000-4000-8000-000000000001", "controller": True,
        "blockOwnerDeletion": False,
    }]
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"]
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert container(cron)["image"] == PY311  # a copy, not the CronJob's own template
    later = render_manual_run(cron, now=now.astimezone(timezone(timedelta(hours=2))))
    assert later["metadata"]["name"] == job["metadata"]["name"]  # the instant, not the wall clock


def test_manual_run_needs_the_live_cronjob() -> None:
    cron = live_cronjob()
    del cron["metadata"]["uid"]
    with pytest.raises(InvalidJobError, match=r"metadata\.uid"):
        render_manual_run(cron, now=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        render_manual_run(live_cronjob(), now=datetime(2024, 1, 1))


def test_restart_patch() -> None:
    now = datetime(2024, 5, 6, 9, 8, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert render_restart_patch(now=now) == {
        "spec": {"template": {"metadata": {"annotations": {
            RESTART_ANNOTATION: "2024-05-06T07:08:07.123456Z"
        }}}}
    }
    with pytest.raises(ValueError, match="timezone-aware"):
        render_restart_patch(now=datetime(2024, 1, 1))


