"""Tests of readback: exact round trips, the original system's objects, and staleness."""

from __future__ import annotations

import copy
import json
import textwrap
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import given, settings

from tests.core.test_render import CATALOG, GOLDEN_CASES, PY311, TOOL, V1, V1BETA1, container
from tests.strategies import job_specs
from tjf_core.convert import spec_from_json
from tjf_core.errors import InvalidJobError
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
from tjf_core.quantity import Quantity
from tjf_core.readback import is_up_to_date, job_name_of, read_spec, split_log_redirects
from tjf_core.render import SPEC_ANNOTATION, Manifest, render_job
from tjf_core.restart import render_restart_patch

HOME = PurePosixPath("/data/project/mytool")


def strip_spec(manifest: Manifest) -> Manifest:
    """The manifest as the original system would have left it: no spec annotation."""
    legacy = copy.deepcopy(manifest)
    del legacy["metadata"]["annotations"][SPEC_ANNOTATION]
    return legacy


def as_live(manifest: Manifest) -> Manifest:
    """The manifest as the API server returns it: server fields, defaults, canonical values."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid="0c7e", resourceVersion="42", generation=1,
                            creationTimestamp="2024-01-01T00:00:00Z")
    live["metadata"]["labels"]["added-by-webhook"] = "yes"
    live["status"] = {}
    spec = live["spec"]
    if live["kind"] == "CronJob":
        spec["suspend"] = False
        spec = spec["jobTemplate"]["spec"]
    if live["kind"] == "Deployment":
        spec["revisionHistoryLimit"] = 10
        if spec["strategy"]["type"] == "RollingUpdate":
            spec["strategy"]["rollingUpdate"] = {"maxSurge": "25%", "maxUnavailable": "25%"}
    pod = spec["template"]["spec"]
    pod.update(dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
    job = pod["containers"][0]
    job.update(imagePullPolicy="Always", terminationMessagePath="/dev/termination-log")
    job["env"] = [{"name": "TOOL_DATA_DIR", "value": "/data/project/mytool"}, *job.get("env", [])]
    job["volumeMounts"] = [{"name": "home", "mountPath": "/data/project"}]
    for probe in ("startupProbe", "livenessProbe"):
        if probe in job:
            job[probe].update(timeoutSeconds=1, successThreshold=1)
    limits = job["resources"]["limits"]
    # The API server writes quantities in its own way; only their values must match.
    limits["cpu"] = format(Quantity.parse(limits["cpu"]).value, "f")
    limits["memory"] = str(int(Quantity.parse(limits["memory"]).value))
    return live


def test_round_trip_of_each_golden_case() -> None:
    for spec, render_settings, tool in GOLDEN_CASES.values():
        manifests = render_job(spec, tool=tool, settings=render_settings, catalog=CATALOG)
        assert read_spec(manifests[0], home=HOME, catalog=CATALOG) == spec
        assert read_spec(as_live(manifests[0]), home=HOME) == spec
        assert is_up_to_date(as_live(manifests[0]), tool=tool, settings=render_settings,
                             catalog=CATALOG)


@settings(max_examples=200)
@given(spec=job_specs())
def test_read_render_is_the_identity_and_up_to_date(spec: JobSpec) -> None:
    versions = [V1] if spec.timezone is not None else [V1, V1BETA1]
    for render_settings in versions:
        manifests = render_job(spec, tool=TOOL, settings=render_settings, catalog=CATALOG)
        main = manifests[0]
        read = read_spec(main, home=HOME, catalog=CATALOG)
        # read_spec may answer from the memo that rendering filled: check the law on the
        # uncached parse too, and that the memo's answer is that parse, formats and all.
        parsed = spec_from_json(main["metadata"]["annotations"][SPEC_ANNOTATION])
        assert read == parsed == spec
        assert (read.memory.format, read.cpu.format) == (parsed.memory.format,
                                                          parsed.cpu.format)
        assert is_up_to_date(main, tool=TOOL, settings=render_settings, catalog=CATALOG)
        assert is_up_to_date(as_live(main), tool=TOOL, settings=render_settings,
                             catalog=CATALOG)
        # Without the annotation (the original system's way), all but the image's spelling
        # is recovered from the object itself.
        expected = attrs.evolve(spec, image=CATALOG.resolve(spec.image).shortname)
        assert read_spec(strip_spec(main), home=HOME, catalog=CATALOG) == expected


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ("image", ("container", "image")),
        ("command", ("container", "command")),
        ("schedule", ("spec", "schedule")),
        ("memory", ("container", "resources")),
        ("label", ("labels", "jobs.toolforge.org/emails")),
    ],
)
def test_live_changes_make_the_object_stale(change: str, path: tuple[str, str]) -> None:
    live = as_live(render_job(GOLDEN_CASES["scheduled-batch-v1"][0], tool=TOOL, settings=V1,
                              catalog=CATALOG)[0])
    assert is_up_to_date(live, tool=TOOL, settings=V1, catalog=CATALOG)
    if change == "image":
        container(live)["image"] = PY311.replace(":latest", ":v2")
    elif change == "command":
        container(live)["command"][-1] += " --verbose"
    elif change == "schedule":
        live["spec"]["schedule"] = "0 0 * * *"
    elif change == "memory":
        container(live)["resources"]["limits"]["memory"] = "2Gi"
    else:
        live["metadata"]["labels"]["jobs.toolforge.org/emails"] = "all"
    assert not is_up_to_date(live, tool=TOOL, settings=V1, catalog=CATALOG)


def test_staleness_follows_the_catalog_and_settings() -> None:
    spec = GOLDEN_CASES["one-off"][0]
    live = as_live(render_job(spec, tool=TOOL, settings=V1, catalog=CATALOG)[0])
    moved = CATALOG.from_yaml(f"python3.11:\n  image: {PY311.replace(':latest', ':v2')}\n")
    assert not is_up_to_date(live, tool=TOOL, settings=V1, catalog=moved)
    gone = CATALOG.from_yaml("bookworm:\n  image: x/bookworm:1\n")
    assert not is_up_to_date(live, tool=TOOL, settings=V1, catalog=gone)
    longer_ttl = attrs.evolve(V1, ttl_seconds_after_finished=300)
    assert not is_up_to_date(live, tool=TOOL, settings=longer_ttl, catalog=CATALOG)
    assert not is_up_to_date(strip_spec(live), tool=TOOL, settings=V1, catalog=CATALOG)


def test_restart_annotation_and_spec_spelling_do_not_make_it_stale() -> None:
    spec = GOLDEN_CASES["continuous-web"][0]
    live = as_live(render_job(spec, tool=TOOL, settings=V1, catalog=CATALOG)[0])
    patch = render_restart_patch(now=datetime(2024, 1, 1, tzinfo=UTC))
    live["spec"]["template"]["metadata"]["annotations"] = \
        patch["spec"]["template"]["metadata"]["annotations"]
    annotations = live["metadata"]["annotations"]
    annotations[SPEC_ANNOTATION] = json.dumps(json.loads(annotations[SPEC_ANNOTATION]), indent=2)
    assert is_up_to_date(live, tool=TOOL, settings=V1, catalog=CATALOG)
    live["kind"] = "StatefulSet"
    assert not is_up_to_date(live, tool=TOOL, settings=V1, catalog=CATALOG)


ORIGINAL_CRONJOB = textwrap.dedent(
    f"""\
    apiVersion: batch/v1
    kind: CronJob
    metadata:
      name: daily-update
      namespace: tool-mytool
      uid: 5bd1b4b2-6b5e-4a8e-9a55-2a1f3d0c9e11
      labels:
        toolforge: tool
        app.kubernetes.io/version: "1"
        app.kubernetes.io/managed-by: toolforge-jobs-framework
        app.kubernetes.io/created-by: mytool
        app.kubernetes.io/component: cronjobs
        app.kubernetes.io/name: daily-update
        jobs.toolforge.org/filelog: "yes"
        jobs.toolforge.org/emails: onfailure
      annotations:
        jobs.toolforge.org/cron-expression: "@daily"
    spec:
      schedule: "17 3 * * *"
      concurrencyPolicy: Forbid
      successfulJobsHistoryLimit: 0
      failedJobsHistoryLimit: 0
      jobTemplate:
        spec:
          backoffLimit: 1
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: job
                image: {PY311}
                workingDir: /data/project/mytool
                command:
                - /bin/sh
                - -c
                - --
                - >-
                  exec 1>>/data/project/mytool/daily-update.out;exec
                  2>>/data/project/mytool/logs/errors.log;python3 update.py --all
                resources:
                  limits: {{memory: 1Gi, cpu: "1"}}
                  requests: {{memory: 512Mi, cpu: 500m}}
    """
)

ORIGINAL_DEPLOYMENT = textwrap.dedent(
    """\
    kind: Deployment
    apiVersion: apps/v1
    metadata:
      name: irc-bot
      namespace: tool-mytool
      labels:
        toolforge: tool
        app.kubernetes.io/managed-by: toolforge-jobs-framework
        app.kubernetes.io/created-by: mytool
        app.kubernetes.io/component: deployments
        app.kubernetes.io/name: irc-bot
        jobs.toolforge.org/emails: none
        toolforge.org/mount-storage: none
    spec:
      replicas: 2
      selector: {matchLabels: {app.kubernetes.io/name: irc-bot}}
      strategy: {type: RollingUpdate}
      template:
        spec:
          containers:
          - name: job
            image: docker-registry.tools.wmflabs.org/unknown-image:1
            command: [/bin/sh, -c, --, "./bot --port $PORT"]
            env: [{name: PORT, value: "7000"}]
            ports: [{containerPort: 7000, protocol: UDP}]
            livenessProbe:
              exec: {command: [/bin/sh, -c, "pgrep bot"]}
              periodSeconds: 10
    """
)


def test_original_cronjob_reads_back() -> None:
    spec = read_spec(yaml.safe_load(ORIGINAL_CRONJOB), home=HOME, catalog=CATALOG)
    assert spec == JobSpec(
        name="daily-update", command="python3 update.py --all", image="python3.11",
        schedule="@daily", concurrency=Concurrency.FORBID, emails=Emails.ONFAILURE, retry=1,
        memory="1Gi", cpu="1", filelog_stdout="daily-update.out",
        filelog_stderr="logs/errors.log",
    )


def test_original_deployment_reads_back() -> None:
    spec = read_spec(yaml.safe_load(ORIGINAL_DEPLOYMENT), home=HOME, catalog=CATALOG)
    assert spec == JobSpec(
        name="irc-bot", command="./bot --port $PORT",
        image="docker-registry.tools.wmflabs.org/unknown-image:1",  # not in the catalog
        kind=JobKind.CONTINUOUS, filelog=False, mount=Mount.NONE, replicas=2, port=7000,
        port_protocol=PortProtocol.UDP,
        health_check=HealthCheck(type=HealthCheckType.SCRIPT, script="pgrep bot"),
    )


def test_original_one_off_job_without_kind_or_limits() -> None:
    # Items of a list response carry no kind; a Job's spec shape identifies it.
    job = {
        "metadata": {"name": "once", "labels": {"app.kubernetes.io/name": "once"}},
        "spec": {
            "backoffLimit": 6,  # the Kubernetes default when the original left it unset
            "selector": {"matchLabels": {"controller-uid": "x"}},
            "template": {"spec": {"containers": [{
                "name": "job", "image": "bookworm-url",
                "command": ["/bin/sh", "-c", "--",
                            "exec 1>>/data/project/mytool/other/once.out;"
                            "exec 2>>/srv/elsewhere.err;./go"],
            }]}},
        },
    }
    assert read_spec(job, home=HOME) == JobSpec(
        name="once", command="./go", image="bookworm-url", retry=5,
        filelog_stdout="other/once.out", filelog_stderr="/srv/elsewhere.err",
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("exec 1>>/h/a.out;exec 2>>/h/a.err;cmd; more", ("/h/a.out", "/h/a.err", "cmd; more")),
        ("exec 1>>'/h/my file.out';exec 2>>'/h/it'\"'\"'s.err';x",
         ("/h/my file.out", "/h/it's.err", "x")),
        ('exec 1>>"/h/q \\"x\\".out";exec 2>>/h/b\\ c.err;x',
         ('/h/q "x".out', "/h/b c.err", "x")),
        ("exec 1>>/h/a.out;exec 2>>/h/a.out;", ("/h/a.out", "/h/a.out", "")),
        ("echo exec 1>>/h/a.out", None),
        ("exec 1>>/h/a.out; echo hi", None),
        ("exec 1>>'/h/unterminated;exec 2>>x;y", None),
        ("exec 1>>;exec 2>>x;y", None),
    ],
)
def test_split_log_redirects(line: str, expected: tuple[str, str, str] | None) -> None:
    assert split_log_redirects(line) == expected


def bad(obj: dict[str, Any]) -> InvalidJobError:
    with pytest.raises(InvalidJobError) as info:
        read_spec(obj, home=HOME)
    return info.value


def test_unreadable_objects_name_the_object() -> None:
    service = bad({"kind": "Service", "metadata": {"name": "web", "namespace": "tool-mytool"}})
    assert "Service tool-mytool/web" in str(service)
    assert "expected a Job, CronJob or Deployment" in str(service)
    empty = bad({"kind": "Deployment", "metadata": {"name": "x"}, "spec": {}})
    assert "Deployment x" in str(empty)
    assert "container" in str(empty)
    broken = bad({"kind": "Job", "metadata": {"name": "j", "annotations": {SPEC_ANNOTATION: "{"}}})
    assert "Job j" in str(broken)
    assert "JSON" in str(broken)
    invalid = yaml.safe_load(ORIGINAL_CRONJOB)
    invalid["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"memory": "lots"}
    }
    invalid_error = bad(invalid)
    assert "CronJob tool-mytool/daily-update" in str(invalid_error)
    assert [p.path for p in invalid_error.problems] == ["memory"]


def test_job_name_of() -> None:
    assert job_name_of({"metadata": {"name": "x-123", "labels":
                                     {"app.kubernetes.io/name": "x"}}}) == "x"
    assert job_name_of({"metadata": {"name": "plain"}}) == "plain"
    assert job_name_of({}) is None
