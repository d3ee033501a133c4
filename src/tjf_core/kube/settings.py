"""Settings of the Kubernetes runtime: how to reach the API, as whom, and where the images are.

Two ways to act for a tool (``mode``):

* ``certificate``: the tool's own kubeconfig, client certificate and key, read from its home
  (``kubeconfig_template``) once a front end has verified who is calling. This is how Toolforge
  has always worked; the service needs no rights of its own beyond reading those files.
* ``impersonation``: the service's own credentials (``service_kubeconfig``, or the pod's
  service account when None) with ``Impersonate-User``/``Impersonate-Group`` headers. No tool's
  private key is ever read; RBAC decides whom the service may impersonate.

The service's own credentials also read the image catalog ConfigMap, in both modes, unless the
catalog comes from a file (``images_file``).
"""

from __future__ import annotations

from typing import Literal

import attrs

from tjf_core.errors import ConfigurationError

__all__ = ["CredentialMode", "CronJobVersionSetting", "KubeSettings"]

CredentialMode = Literal["certificate", "impersonation"]
CronJobVersionSetting = Literal["auto", "batch/v1", "batch/v1beta1"]

_MODES = ("certificate", "impersonation")
_CRONJOB_VERSIONS = ("auto", "batch/v1", "batch/v1beta1")


@attrs.frozen(kw_only=True)
class KubeSettings:
    """Everything :class:`~tjf_core.kube.runtime.KubernetesRuntime` needs besides the core's.

    The defaults are Toolforge's: certificate mode with ``~/.kube/config`` in the tool's home and
    the catalog in the ``image-config`` ConfigMap of the ``image-config`` namespace.
    """

    mode: CredentialMode = "certificate"

    # --- certificate mode ----------------------------------------------------------------
    #: The tool's kubeconfig; ``{home}`` and ``{tool}`` are filled in. Relative file names in
    #: it are resolved against its directory, as kubectl does.
    kubeconfig_template: str = "{home}/.kube/config"
    #: A CA bundle that replaces the kubeconfig's ``certificate-authority`` (None: use it).
    ca_file: str | None = None
    #: Tools whose clients are kept; the least recently used is closed beyond this.
    max_cached_tools: int = 512

    # --- impersonation mode (and the service's own reads) -------------------------------
    #: The service's own kubeconfig; None: the in-cluster service account.
    service_kubeconfig: str | None = None
    #: The user a tool is impersonated as; ``{tool}`` is filled in.
    impersonate_user_template: str = "{tool}"
    impersonate_groups: tuple[str, ...] = ("toolforge",)

    # --- the cluster ---------------------------------------------------------------------
    #: ``auto`` asks the API once (batch/v1 serves CronJobs from Kubernetes 1.21 on).
    cronjob_api_version: CronJobVersionSetting = "auto"
    #: Seconds to wait for an answer (a followed log waits for its next line forever).
    request_timeout_seconds: float = 30.0
    #: Seconds to wait for a connection; short, so an unreachable API is reported quickly.
    connect_timeout_seconds: float = 5.0
    #: Threads that send a listing's five requests at once (shared by all calls); 0 sends
    #: them one after the other. At 100 jobs this cuts a listing by a third (docs: bench).
    list_threads: int = 8

    # --- the image catalog ---------------------------------------------------------------
    images_configmap_namespace: str = "image-config"
    images_configmap_name: str = "image-config"
    images_configmap_key: str = "images-v1.yaml"
    #: Read the catalog from this file instead of the ConfigMap.
    images_file: str | None = None
    #: A catalog older than this is read again; a failed read keeps the last good one.
    images_refresh_seconds: float = 300.0

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        if self.mode not in _MODES:
            problems.append(f"mode {self.mode!r} is not known: use certificate or impersonation")
        if self.cronjob_api_version not in _CRONJOB_VERSIONS:
            problems.append(
                f"cronjob_api_version {self.cronjob_api_version!r} is not known: "
                "use auto, batch/v1 or batch/v1beta1"
            )
        for name in ("request_timeout_seconds", "connect_timeout_seconds",
                     "images_refresh_seconds"):
            value = getattr(self, name)
            if not value > 0:
                problems.append(f"{name} {value!r} must be a number of seconds above 0")
        if self.list_threads < 0:
            problems.append(f"list_threads {self.list_threads} must be 0 or more")
        if self.max_cached_tools < 1:
            problems.append(f"max_cached_tools {self.max_cached_tools} must be at least 1")
        if self.mode == "impersonation" and not self.impersonate_user_template:
            problems.append("impersonate_user_template must not be empty in impersonation mode")
        if problems:
            raise ConfigurationError("invalid Kubernetes settings: " + "; ".join(problems))
