"""The Kubernetes edge of tjf: the only package that imports the ``kubernetes`` client.

:class:`KubernetesRuntime` implements :class:`tjf_core.runtime.Runtime` against a real API
server, acting as each tool with that tool's own certificate (or by impersonation), sending raw
JSON and raising only :mod:`tjf_core.errors`. Its settings are :class:`KubeSettings`.
"""

from __future__ import annotations

from tjf_core.kube.credentials import Credentials, CredentialStore
from tjf_core.kube.errors import error_from_exception, error_from_status
from tjf_core.kube.runtime import KubernetesRuntime
from tjf_core.kube.settings import KubeSettings

__all__ = [
    "CredentialStore",
    "Credentials",
    "KubeSettings",
    "KubernetesRuntime",
    "error_from_exception",
    "error_from_status",
]
