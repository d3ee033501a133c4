"""Tests of rendering: golden manifests per kind, the REFERENCE §3 rules, schema validity."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.k8s_schema import assert_valid, schema_errors
from tests.strategies import job_specs
from tjf_core.errors import InvalidJobError, UnknownImageError
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
from tjf_core.render import (
    CRON_ANNOTATION,
    SPEC_ANNOTATION,
    Manifest,
    ToolContext,
    log_paths,
    render_job,
    schedule_actual,
)
from tjf_core.settings import IdentitySettings, RenderSettings

GOLDEN = Path(__file__).parent / "golden"
V1 = RenderSettings()
V1BETA1 = RenderSettings(cronjob_api_version="batch/v1beta1")
TOOL = ToolContext(identity=ToolIdentity.for_tool("mytool", settings=IdentitySettings()), uid=52503)
CATALOG = ImageCatalog.from_yaml(
    (importlib.resources.files("tjf_core") / "data" / "images.yaml").read_text("utf-8")
)
PY311 = "docker-registry.tools.wmflabs.org/toolforge-python311-sssd-base:latest"


def render(spec: JobSpec, render_settings: RenderSettings = V1, **kwargs: Any) -> list[Manifest]:
    """Render and check every manifest against the Kubernetes schema on the way."""
    manifests = render_job(spec, tool=kwargs.pop("tool", TOOL), settings=render_settings,
                           catalog=kwargs.pop("catalog", CATALOG))
    for manifest in manifests:
        if manifest["apiVersion"] != "batch/v1beta1":  # no schema bundled for it
            assert_valid(manifest)
    return manifests


def container(manifest: Manifest) -> dict[str, Any]:
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec["template"]["spec"]["containers"][0]
    return result


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec["template"]["spec"]
    return result


GOLDEN_CASES: dict[str, tuple[JobSpec, RenderSettings, ToolContext]] = {
    "one-off": (
        JobSpec(name="myjob", command="./run.sh --once", image="python3.11", retry=2,
                timeout=600, emails=Emails.ONFAILURE),
        V1, TOOL,
    ),
    "scheduled-batch-v1": (
        JobSpec(name="daily-update", command="python3 update.py", image="tf-python311",
                schedule="@daily", timezone="Europe/Berlin", concurrency=Concurrency.REPLACE,
                memory="1Gi", cpu="1.5", retry=1),
        V1, TOOL,
    ),
    "scheduled-batch-v1beta1": (
        JobSpec(name="every-ten", command="./sync.sh", image="bookworm",
                schedule="*/10 * * * *", emails=Emails.ALL),
        V1BETA1, TOOL,
    ),
    "continuous": (
        JobSpec(name="bot", command="python3 bot.py", image="python3.11",
                kind=JobKind.CONTINUOUS, mount=Mount.NONE),
        V1, TOOL,
    ),
    "continuous-web": (
        JobSpec(name="web", command="gunicorn app:app", image="python3.11",
                kind=JobKind.CONTINUOUS, port=8000, replicas=3, memory="2Gi", cpu="2",
                health_check=HealthCheck(type=HealthCheckType.HTTP, path="/healthz")),
        V1, TOOL,
    ),
    "continuous-udp-script-check": (
        JobSpec(name="dns", command="./serve-dns", image="bookworm",
                kind=JobKind.CONTINUOUS, port=5353, port_protocol=PortProtocol.UDP,
                health_check=HealthCheck(type=HealthCheckType.SCRIPT, script="test -f /tmp/ok")),
        V1, TOOL,
    ),
    "filelog-off": (
        JobSpec(name="quiet", command="echo 'no files' && date", image="php8.2", filelog=False),
        V1, ToolContext(identity=TOOL.identity),
    ),
    "quoted-paths": (
        JobSpec(name="odd", command="./run.sh", image="python3.11",
                filelog_stdout="logs/my file.out",
                filelog_stderr="/data/project/mytool/logs/it's $HOME;rm.err"),
        V1, TOOL,
    ),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_manifests(case: str) -> None:
    spec, render_settings, tool = GOLDEN_CASES[case]
    text = yaml.safe_dump_all(
        render(spec, render_settings, tool=tool), sort_keys=False, allow_unicode=True, width=100
    )
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("TJF_UPDATE_GOLDEN") == "1":
        path.write_text(text, "utf-8")
    assert "&id" not in text, "manifests must not share mutable parts (YAML anchors)"
    assert path.read_text("utf-8") == text


def test_rendering_is_deterministic() -> None:
    for spec, render_settings, tool in GOLDEN_CASES.values():
        first = render_job(spec, tool=tool, settings=render_settings, catalog=CATALOG)
        assert render_job(spec, tool=tool, settings=render_settings, catalog=CATALOG) == first


def test_kind_decides_the_objects() -> None:
    kinds = {
        case: [(m["apiVersion"], m["kind"]) for m in render(*GOLDEN_CASES[case][:2])]
        for case in ("one-off", "scheduled-batch-v1", "scheduled-batch-v1beta1", "continuous",
                     "continuous-web")
    }
    assert kinds == {
        "one-off": [("batch/v1", "Job")],
        "scheduled-batch-v1": [("batch/v1", "CronJob")],
        "scheduled-batch-v1beta1": [("batch/v1beta1", "CronJob")],
        "continuous": [("apps/v1", "Deployment")],
        "continuous-web": [("apps/v1", "Deployment"), ("v1", "Service")],
    }


def test_labels_on_object_and_pod_and_selectors_use_identity_labels_only() -> None:
    spec = GOLDEN_CASES["continuous-web"][0]
    deployment, service = render(spec)
    labels = deployment["metadata"]["labels"]
    assert labels == {
        "toolforge": "tool",
        "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
        "app.kubernetes.io/created-by": "mytool",
        "app.kubernetes.io/name": "web",
        "app.kubernetes.io/component": "deployments",
        "app.kubernetes.io/version": "2",
        "jobs.toolforge.org/filelog": "yes",
        "jobs.toolforge.org/emails": "none",
        "toolforge.org/mount-storage": "all",
    }
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    identity = {k: labels[k] for k in ("toolforge", "app.kubernetes.io/managed-by",
                                       "app.kubernetes.io/created-by", "app.kubernetes.io/name")}
    assert deployment["spec"]["selector"] == {"matchLabels": identity}
    assert service["spec"]["selector"] == identity
    quiet = render(GOLDEN_CASES["filelog-off"][0])[0]
    assert "jobs.toolforge.org/filelog" not in quiet["metadata"]["labels"]


def test_spec_and_cron_annotations() -> None:
    cron = render(GOLDEN_CASES["scheduled-batch-v1"][0])[0]
    annotations = cron["metadata"]["annotations"]
    assert annotations[CRON_ANNOTATION] == "@daily"
    assert '"schedule":"@daily"' in annotations[SPEC_ANNOTATION]
    assert cron["spec"]["schedule"] != "@daily"
    assert len(cron["spec"]["schedule"].split()) == 5
    job = render(GOLDEN_CASES["one-off"][0])[0]
    assert set(job["metadata"]["annotations"]) == {SPEC_ANNOTATION}


def test_schedule_actual_is_the_cronjob_schedule_and_stable() -> None:
    spec = GOLDEN_CASES["scheduled-batch-v1"][0]
    actual = schedule_actual(spec, tool="mytool")
    assert actual == render(spec)[0]["spec"]["schedule"]
    assert actual == schedule_actual(spec, tool="mytool")
    assert actual != schedule_actual(spec, tool="othertool")  # spread per tool (fixed hash)
    assert schedule_actual(GOLDEN_CASES["one-off"][0], tool="mytool") is None
    sunday = JobSpec(name="s", command="x", image="bookworm", schedule="5 4 * * 7")
    assert schedule_actual(sunday, tool="mytool") == "5 4 * * 0"


def test_timezone_only_on_batch_v1() -> None:
    cron = render(GOLDEN_CASES["scheduled-batch-v1"][0])[0]
    assert cron["spec"]["timeZone"] == "Europe/Berlin"
    utc = render(GOLDEN_CASES["scheduled-batch-v1beta1"][0], V1BETA1)[0]
    assert "timeZone" not in utc["spec"]
    with pytest.raises(InvalidJobError) as info:
        render_job(GOLDEN_CASES["scheduled-batch-v1"][0], tool=TOOL, settings=V1BETA1)
    assert [p.path for p in info.value.problems] == ["timezone"]
    assert "batch/v1beta1" in str(info.value)


def test_log_files_outside_the_home_are_refused() -> None:
    spec = JobSpec(name="x", command="x", image="bookworm", filelog_stdout="/tmp/x.out")
    with pytest.raises(InvalidJobError) as info:
        render_job(spec, tool=TOOL, settings=V1)
    assert [p.path for p in info.value.problems] == ["filelog_stdout"]
    assert "/data/project/mytool" in str(info.value)


def test_image_from_catalog_or_as_given() -> None:
    spec = GOLDEN_CASES["scheduled-batch-v1"][0]  # an alias
    assert container(render(spec)[0])["image"] == PY311
    assert container(render(spec, catalog=None)[0])["image"] == "tf-python311"
    unknown = JobSpec(name="x", command="x", image="cobol")
    with pytest.raises(UnknownImageError):
        render_job(unknown, tool=TOOL, settings=V1, catalog=CATALOG)


@pytest.mark.parametrize(
    ("memory", "cpu", "requests"),
    [
        ("512Mi", "500m", {"memory": "512Mi", "cpu": "500m"}),
        ("256Mi", "250m", {"memory": "256Mi", "cpu": "250m"}),
        ("1Gi", "2", {"memory": "512Mi", "cpu": "1"}),
        ("513Mi", "0.501", {"memory": "262656Ki", "cpu": "250500u"}),
        ("1000000001", "3", {"memory": "500000001", "cpu": "1500m"}),
    ],
)
def test_requests_are_the_limit_up_to_the_default_then_half(
    memory: str, cpu: str, requests: dict[str, str]
) -> None:
    spec = JobSpec(name="x", command="x", image="bookworm", memory=memory, cpu=cpu)
    resources = container(render(spec)[0])["resources"]
    assert resources["requests"] == requests
    assert resources["limits"] == {"memory": str(spec.memory), "cpu": str(spec.cpu)}


def test_one_off_job_fields() -> None:
    job = render(GOLDEN_CASES["one-off"][0])[0]["spec"]
    assert (job["backoffLimit"], job["ttlSecondsAfterFinished"], job["activeDeadlineSeconds"]) \
        == (2, 30, 600)
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    no_timeout = render(GOLDEN_CASES["filelog-off"][0])[0]["spec"]
    assert "activeDeadlineSeconds" not in no_timeout


def test_cronjob_fields() -> None:
    cron = render(GOLDEN_CASES["scheduled-batch-v1"][0])[0]["spec"]
    assert cron["concurrencyPolicy"] == "Replace"
    assert (cron["startingDeadlineSeconds"], cron["successfulJobsHistoryLimit"],
            cron["failedJobsHistoryLimit"]) == (30, 1, 1)
    assert cron["jobTemplate"]["spec"]["backoffLimit"] == 1
    assert cron["jobTemplate"]["metadata"]["labels"]["app.kubernetes.io/component"] == "cronjobs"


def test_deployment_strategy_probes_and_port() -> None:
    bot = render(GOLDEN_CASES["continuous"][0])[0]
    assert bot["spec"]["strategy"] == {"type": "Recreate"}
    assert bot["spec"]["replicas"] == 1
    assert "startupProbe" not in container(bot)
    assert "env" not in container(bot)
    web, service = render(GOLDEN_CASES["continuous-web"][0])
    assert web["spec"]["strategy"] == {"type": "RollingUpdate"}
    web_container = container(web)
    assert web_container["startupProbe"] == {
        "httpGet": {"path": "/healthz", "port": 8000}, "periodSeconds": 1, "failureThreshold": 120
    }
    assert web_container["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": 8000}, "periodSeconds": 10, "failureThreshold": 3
    }
    assert web_container["env"] == [{"name": "PORT", "value": "8000"}]
    assert web_container["ports"] == [{"containerPort": 8000, "protocol": "TCP"}]
    assert service["spec"]["ports"] == [{"port": 8000, "targetPort": 8000, "protocol": "TCP"}]
    assert service["metadata"]["name"] == "web"
    dns, dns_service = render(GOLDEN_CASES["continuous-udp-script-check"][0])
    assert container(dns)["livenessProbe"]["exec"] == {
        "command": ["/bin/sh", "-c", "test -f /tmp/ok"]
    }
    assert dns_service["spec"]["ports"][0]["protocol"] == "UDP"
    tcp_only = JobSpec(name="t", command="x", image="bookworm", kind=JobKind.CONTINUOUS, port=80)
    assert container(render(tcp_only)[0])["startupProbe"]["tcpSocket"] == {"port": 80}
    udp_only = JobSpec(name="u", command="x", image="bookworm", kind=JobKind.CONTINUOUS,
                       port=53, port_protocol=PortProtocol.UDP)
    assert "startupProbe" not in container(render(udp_only)[0])  # UDP cannot be probed by TCP


def test_pod_security_and_workdir() -> None:
    pod = pod_spec(render(GOLDEN_CASES["one-off"][0])[0])
    assert pod["securityContext"] == {"runAsUser": 52503, "runAsGroup": 52503,
                                      "runAsNonRoot": True}
    assert pod["terminationGracePeriodSeconds"] == 15
    job_container = pod["containers"][0]
    assert job_container["name"] == "job"
    assert job_container["workingDir"] == "/data/project/mytool"
    assert job_container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    anonymous = pod_spec(render(GOLDEN_CASES["filelog-off"][0],
                                tool=ToolContext(identity=TOOL.identity))[0])
    assert anonymous["securityContext"] == {"runAsNonRoot": True}


def test_filelog_line_writes_to_the_quoted_files(tmp_path: Path) -> None:
    # Run the very line a pod runs: odd file names must stay file names, never shell code.
    identity = ToolIdentity.for_tool(
        "mytool", settings=IdentitySettings(home_template=f"{tmp_path}/{{tool}}")
    )
    home = tmp_path / "mytool"
    (home / "logs").mkdir(parents=True)
    spec = JobSpec(name="odd", command="echo out; echo err >&2", image="bookworm",
                   filelog_stdout="logs/my file.out", filelog_stderr="logs/it's $HOME;rm.err")
    manifest = render_job(spec, tool=ToolContext(identity=identity), settings=V1)[0]
    command = container(manifest)["command"]
    assert command[:3] == ["/bin/sh", "-c", "--"]
    subprocess.run(command, cwd=home, check=True, timeout=10)
    assert (home / "logs" / "my file.out").read_text() == "out\n"
    assert (home / "logs" / "it's $HOME;rm.err").read_text() == "err\n"
    assert sorted(p.name for p in (home / "logs").iterdir()) == ["it's $HOME;rm.err",
                                                                "my file.out"]


def test_command_without_filelog_is_the_command() -> None:
    quiet = render(GOLDEN_CASES["filelog-off"][0])[0]
    assert container(quiet)["command"] == ["/bin/sh", "-c", "--", "echo 'no files' && date"]


def test_broken_manifests_fail_the_schema_check() -> None:
    job = render(GOLDEN_CASES["one-off"][0])[0]
    job["spec"]["backofLimit"] = 3  # misspelt: strict schemas refuse unknown fields
    with pytest.raises(AssertionError, match="backofLimit"):
        assert_valid(job)
    deployment = render(GOLDEN_CASES["continuous"][0])[0]
    deployment["spec"]["replicas"] = "3"
    with pytest.raises(AssertionError, match=r"spec\.replicas"):
        assert_valid(deployment)
    service = render(GOLDEN_CASES["continuous-web"][0])[1]
    service["spec"]["ports"][0]["port"] = {"number": 1}
    assert schema_errors(service, version="1.33")[0].startswith("spec.ports.0.port:")


@settings(max_examples=200)
@given(spec=job_specs(), uid=st.one_of(st.none(), st.integers(1, 2**31 - 1)))
def test_every_rendered_manifest_is_valid_kubernetes(spec: JobSpec, uid: int | None) -> None:
    tool = ToolContext(identity=TOOL.identity, uid=uid)
    for manifest in render_job(spec, tool=tool, settings=V1, catalog=CATALOG):
        assert_valid(manifest)


@settings(max_examples=200)
@given(path=st.text(alphabet="ab./ ", min_size=1, max_size=12))
def test_log_paths_are_joined_to_the_home_as_pathlib_does(path: str) -> None:
    try:
        spec = JobSpec(name="x", command="x", image="x", filelog_stdout=path)
    except InvalidJobError:
        assume(False)
    home = TOOL.identity.home
    assert log_paths(spec, home=home) == (str(home / path), str(home / "x.err"))
