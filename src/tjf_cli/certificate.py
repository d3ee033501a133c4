"""The tool's client certificate, checked before it is shown to anyone.

The jobs API knows a tool by the client certificate in the tool's kubeconfig
(:func:`tjf_http.credentials.certificate_from_kubeconfig` reads it). A TLS refusal cannot say
why a certificate was refused, so the usual causes are looked for here first, each with its
own message and what to do: no kubeconfig (the command was not run as the tool), a
certificate file that is missing, a certificate that expired or is not valid yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import attrs

from tjf_core.errors import CertificateError, ConfigurationError
from tjf_http.credentials import ClientCertificate, certificate_from_kubeconfig, kubeconfig_files

__all__ = ["ToolCertificate", "load_tool_certificate"]

#: What a Toolforge user most often forgot.
BECOME_HINT = "run it as the tool (`become TOOLNAME` first), or set KUBECONFIG to its kubeconfig"


@attrs.frozen(kw_only=True)
class ToolCertificate:
    certificate: ClientCertificate
    #: The tool it names (its CN).
    tool: str
    #: The kubeconfig it came from.
    kubeconfig: Path


def _existing_kubeconfig(environ: Mapping[str, str], home: Path) -> Path:
    candidates = kubeconfig_files(environ, home)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    shown = ", ".join(str(candidate) for candidate in candidates)
    raise ConfigurationError(f"no kubeconfig found at {shown}: {BECOME_HINT}")


def load_tool_certificate(environ: Mapping[str, str], *, home: Path,
                          now: datetime) -> ToolCertificate:
    """The certificate of the kubeconfig's current context, and the tool it names.

    Raises ConfigurationError (no kubeconfig, no certificate in it, a missing or unreadable
    file) or CertificateError (expired, not valid yet, names no tool).
    """
    kubeconfig = _existing_kubeconfig(environ, home)
    certificate = certificate_from_kubeconfig(environ=environ, home=home)
    for part, what in ((certificate.cert, "certificate"), (certificate.key, "key")):
        if isinstance(part, Path) and not part.exists():
            raise ConfigurationError(
                f"the client {what} file {str(part)!r} named by {certificate.source} does "
                f"not exist: {BECOME_HINT}")
    facts = certificate.read()
    if now > facts.not_after:
        raise CertificateError(
            f"the tool's client certificate ({certificate.source}) expired on "
            f"{facts.not_after:%Y-%m-%d %H:%M} UTC: Toolforge renews it by itself within "
            "minutes; if it stays expired, ask the Toolforge admins")
    if now < facts.not_before:
        raise CertificateError(
            f"the tool's client certificate ({certificate.source}) is only valid from "
            f"{facts.not_before:%Y-%m-%d %H:%M} UTC: check this machine's clock, or wait")
    if not facts.common_name:
        raise CertificateError(f"the client certificate of {certificate.source} has no CN, so "
                               "it names no tool: use the tool's own kubeconfig")
    tool = facts.common_name
    return ToolCertificate(certificate=certificate, tool=tool, kubeconfig=kubeconfig)
