"""tjf_core: the Toolforge Jobs Framework as a library.

Everything about jobs lives here; the REST API, the command line client and the emailer are thin
adapters over it. The names below are the public surface, importable from ``tjf_core`` directly::

    from tjf_core import JobSpec, render_job

They are loaded on first use, so ``import tjf_core.errors`` (what a front end needs to start)
does not pay for cryptography, cattrs or the renderers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tjf_core.convert import (
        JobsFileEntry,
        dump_jobs_file,
        job_from_api,
        job_from_yaml_entry,
        job_to_api,
        job_to_yaml_entry,
        load_jobs_file,
    )
    from tjf_core.errors import (
        AlreadyExistsError,
        AuthenticationError,
        CertificateError,
        ConfigurationError,
        ForbiddenError,
        InvalidCatalogError,
        InvalidInputError,
        InvalidJobError,
        InvalidQuantityError,
        InvalidScheduleError,
        LimitExceededError,
        NotFoundError,
        NotRestartableError,
        Problem,
        QuotaExceededError,
        RuntimeUnavailableError,
        TjfError,
        UnknownImageError,
    )
    from tjf_core.identity import (
        ToolIdentity,
        identity_from_certificate,
        identity_from_subject_dn,
    )
    from tjf_core.images import Image, ImageCatalog, ImageState
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
    from tjf_core.plan import Action, Plan, PlannedChange, make_plan
    from tjf_core.quantity import Quantity
    from tjf_core.quota import QuotaCategory, QuotaItem, limit_problems, quota_categories
    from tjf_core.readback import is_up_to_date, read_spec
    from tjf_core.render import ToolContext, render_job
    from tjf_core.restart import render_manual_run, render_restart_patch
    from tjf_core.runtime import Runtime, ToolObjects
    from tjf_core.schedule import expand_schedule, next_fire, parse_cron, previous_fire
    from tjf_core.service import ApplyResult, Job, JobList, JobService
    from tjf_core.settings import IdentitySettings, RenderSettings, Settings
    from tjf_core.status import JobObjects, JobStatus, StatusShort, group_objects, job_status

_EXPORTS: dict[str, tuple[str, ...]] = {
    "convert": ("JobsFileEntry", "dump_jobs_file", "job_from_api", "job_from_yaml_entry",
                "job_to_api", "job_to_yaml_entry", "load_jobs_file"),
    "errors": ("AlreadyExistsError", "AuthenticationError", "CertificateError",
               "ConfigurationError", "ForbiddenError", "InvalidCatalogError", "InvalidInputError",
               "InvalidJobError", "InvalidQuantityError", "InvalidScheduleError",
               "LimitExceededError", "NotFoundError", "NotRestartableError", "Problem",
               "QuotaExceededError", "RuntimeUnavailableError", "TjfError", "UnknownImageError"),
    "identity": ("ToolIdentity", "identity_from_certificate", "identity_from_subject_dn"),
    "images": ("Image", "ImageCatalog", "ImageState"),
    "model": ("Concurrency", "Emails", "HealthCheck", "HealthCheckType", "JobKind", "JobSpec",
              "Mount", "PortProtocol"),
    "plan": ("Action", "Plan", "PlannedChange", "make_plan"),
    "quantity": ("Quantity",),
    "quota": ("QuotaCategory", "QuotaItem", "limit_problems", "quota_categories"),
    "readback": ("is_up_to_date", "read_spec"),
    "render": ("ToolContext", "render_job"),
    "restart": ("render_manual_run", "render_restart_patch"),
    "schedule": ("expand_schedule", "next_fire", "parse_cron", "previous_fire"),
    "runtime": ("Runtime", "ToolObjects"),
    "service": ("ApplyResult", "Job", "JobList", "JobService"),
    "settings": ("IdentitySettings", "RenderSettings", "Settings"),
    "status": ("JobObjects", "JobStatus", "StatusShort", "group_objects", "job_status"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "Action",
    "AlreadyExistsError",
    "ApplyResult",
    "AuthenticationError",
    "CertificateError",
    "Concurrency",
    "ConfigurationError",
    "Emails",
    "ForbiddenError",
    "HealthCheck",
    "HealthCheckType",
    "IdentitySettings",
    "Image",
    "ImageCatalog",
    "ImageState",
    "InvalidCatalogError",
    "InvalidInputError",
    "InvalidJobError",
    "InvalidQuantityError",
    "InvalidScheduleError",
    "Job",
    "JobKind",
    "JobList",
    "JobObjects",
    "JobService",
    "JobSpec",
    "JobStatus",
    "JobsFileEntry",
    "LimitExceededError",
    "Mount",
    "NotFoundError",
    "NotRestartableError",
    "Plan",
    "PlannedChange",
    "PortProtocol",
    "Problem",
    "Quantity",
    "QuotaCategory",
    "QuotaExceededError",
    "QuotaItem",
    "RenderSettings",
    "Runtime",
    "RuntimeUnavailableError",
    "Settings",
    "StatusShort",
    "TjfError",
    "ToolContext",
    "ToolIdentity",
    "ToolObjects",
    "UnknownImageError",
    "dump_jobs_file",
    "expand_schedule",
    "group_objects",
    "identity_from_certificate",
    "identity_from_subject_dn",
    "is_up_to_date",
    "job_from_api",
    "job_from_yaml_entry",
    "job_status",
    "job_to_api",
    "job_to_yaml_entry",
    "limit_problems",
    "load_jobs_file",
    "make_plan",
    "next_fire",
    "parse_cron",
    "previous_fire",
    "quota_categories",
    "read_spec",
    "render_job",
    "render_manual_run",
    "render_restart_patch",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'tjf_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tjf_core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
