"""Settings of the core, as small frozen attrs classes grouped by concern.

They are built once at the edge (a config file, the environment, flags) and passed down;
nothing in the core reads settings from anywhere by itself. Every default here is the value
Toolforge runs with, so ``Settings()`` is a working production configuration.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["IdentitySettings", "RenderSettings", "Settings"]

CronJobApiVersion = Literal["batch/v1", "batch/v1beta1"]


@attrs.frozen(kw_only=True)
class IdentitySettings:
    """How a tool name becomes a namespace, a home directory and a trusted certificate."""

    #: Client certificates and subject DNs must carry exactly this organisation (O=).
    organisation: str = "toolforge"
    #: ``{tool}`` is replaced by the tool's name.
    namespace_template: str = "tool-{tool}"
    home_template: str = "/data/project/{tool}"
    #: The unix user whose uid a tool's pods run as (``runAsUser``), e.g. ``tools.{tool}``
    #: as on Toolforge; empty: pods run as their image's user. Looked up by the front end.
    uid_user_template: str = ""


@attrs.frozen(kw_only=True)
class RenderSettings:
    """What rendering a job into Kubernetes objects needs beyond the job itself."""

    #: ``batch/v1`` from Kubernetes 1.21 on; ``batch/v1beta1`` for older clusters.
    cronjob_api_version: CronJobApiVersion = "batch/v1"
    #: Finished Jobs (and the Jobs of CronJobs) are garbage collected after this many seconds.
    ttl_seconds_after_finished: int = 30
    #: A CronJob whose start is missed by more than this is skipped until its next time.
    starting_deadline_seconds: int = 30
    termination_grace_period_seconds: int = 15
    #: Name of the container in every pod.
    container_name: str = "job"


@attrs.frozen(kw_only=True)
class Settings:
    """All settings of the core."""

    identity: IdentitySettings = IdentitySettings()
    render: RenderSettings = RenderSettings()
