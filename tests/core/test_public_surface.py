"""The public surface of tjf_core is deliberate: adding or removing a name is a decision."""

from __future__ import annotations

import subprocess
import sys

import tjf_core

EXPECTED = [
    "ApplyResult", "Job", "JobList", "JobService", "Runtime", "ToolObjects",
    "Action", "AlreadyExistsError", "AuthenticationError", "CertificateError", "Concurrency",
    "ConfigurationError", "Emails", "ForbiddenError", "HealthCheck", "HealthCheckType",
    "IdentitySettings", "Image", "ImageCatalog", "ImageState", "InvalidCatalogError",
    "InvalidInputError", "InvalidJobError", "InvalidQuantityError", "InvalidScheduleError",
    "JobKind", "JobObjects", "JobSpec", "JobStatus", "JobsFileEntry", "LimitExceededError",
    "Mount", "NotFoundError", "NotRestartableError", "Plan", "PlannedChange", "PortProtocol",
    "Problem", "Quantity", "QuotaCategory", "QuotaExceededError", "QuotaItem", "RenderSettings",
    "RuntimeUnavailableError", "Settings", "StatusShort", "TjfError", "ToolContext",
    "ToolIdentity", "UnknownImageError", "dump_jobs_file", "expand_schedule", "group_objects",
    "identity_from_certificate", "identity_from_subject_dn", "is_up_to_date", "job_from_api",
    "job_from_yaml_entry", "job_status", "job_to_api", "job_to_yaml_entry", "limit_problems",
    "load_jobs_file", "make_plan", "next_fire", "parse_cron", "previous_fire",
    "quota_categories", "read_spec", "render_job", "render_manual_run", "render_restart_patch",
]


def test_all_is_pinned() -> None:
    assert sorted(tjf_core.__all__) == sorted(EXPECTED)


def test_every_exported_name_resolves_to_its_module() -> None:
    for name in tjf_core.__all__:
        value = getattr(tjf_core, name)
        module = getattr(value, "__module__", "")
        assert module.startswith("tjf_core."), (name, module)


def test_unknown_names_raise_attribute_error() -> None:
    assert not hasattr(tjf_core, "no_such_thing")


def test_importing_errors_stays_light() -> None:
    # front ends import the error tree at start-up; it must not drag in the heavy modules
    code = (
        "import sys, tjf_core.errors; "
        "heavy = {'cryptography', 'cattrs', 'yaml', 'tjf_core.render'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
