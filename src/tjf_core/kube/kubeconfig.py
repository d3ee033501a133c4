"""Reading a tool's kubeconfig: which API server, which CA, which client certificate and key.

maintain-kubeusers writes each tool a kubeconfig that names its client certificate and key as
files next to it (``~/.toolskube/client.crt``); other setups embed them (``…-data``). Only the
current context matters. This module parses the document into a :class:`KubeconfigEntry`
without touching the disk, so that the credential loader can stat exactly the files the entry
names (to notice certificate rotation) and every refusal can be tested as plain data.

Refused, with the tool and the file named: ``insecure-skip-tls-verify`` (the API server's
certificate is always verified), a plain ``http://`` server, and a user without a client
certificate and key (certificate mode has nothing else to present).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import attrs
import yaml

from tjf_core.errors import ConfigurationError

__all__ = ["KubeconfigEntry", "Material", "parse_kubeconfig"]


@attrs.frozen
class Material:
    """A certificate, key or CA bundle: a file to read, or bytes embedded in the kubeconfig."""

    path: PurePath | None = None
    data: bytes | None = None

    def describe(self, kubeconfig: PurePath) -> str:
        return str(self.path) if self.path is not None else f"data embedded in {kubeconfig}"


@attrs.frozen(kw_only=True)
class KubeconfigEntry:
    """What the current context of a kubeconfig says about reaching the API."""

    source: PurePath
    server: str
    tls_server_name: str | None
    ca: Material | None
    client_cert: Material
    client_key: Material

    def files(self) -> tuple[PurePath, ...]:
        """The files the entry names (besides the kubeconfig itself)."""
        named = (self.ca, self.client_cert, self.client_key)
        return tuple(m.path for m in named if m is not None and m.path is not None)


def _named(items: object, name: object, what: str, fail: _Fail) -> Mapping[str, Any]:
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and item.get("name") == name:
            body = item.get(what)
            if isinstance(body, Mapping):
                return body
            raise fail(f"{what} {name!r} has no {what} section")
    raise fail(f"it names {what} {name!r}, which it does not define")


class _Fail:
    def __init__(self, owner: str, source: PurePath) -> None:
        self.owner = owner
        self.source = source

    def __call__(self, detail: str) -> ConfigurationError:
        return ConfigurationError(f"the kubeconfig of {self.owner} ({self.source}): {detail}")


def _material(
    section: Mapping[str, Any], key: str, *, base: PurePath, fail: _Fail
) -> Material | None:
    data = section.get(f"{key}-data")
    if data:
        try:
            return Material(data=base64.b64decode(str(data), validate=True))
        except (binascii.Error, ValueError):
            raise fail(f"{key}-data is not valid base64") from None
    path = section.get(key)
    if path:
        # Relative names are relative to the kubeconfig's directory, as kubectl reads them.
        return Material(path=base / str(path))
    return None


def parse_kubeconfig(text: str, *, source: PurePath, owner: str) -> KubeconfigEntry:
    """The current context of the kubeconfig ``text`` read from ``source``.

    ``owner`` (``tool 'foo'``) names whose kubeconfig it is in error messages.
    """
    fail = _Fail(owner, source)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise fail(f"not valid YAML: {error}") from None
    if not isinstance(document, Mapping):
        raise fail("not a kubeconfig (expected a mapping with clusters, users and contexts)")
    current = document.get("current-context")
    if not current:
        raise fail("it has no current-context")
    context = _named(document.get("contexts"), current, "context", fail)
    cluster = _named(document.get("clusters"), context.get("cluster"), "cluster", fail)
    user = _named(document.get("users"), context.get("user"), "user", fail)
    if cluster.get("insecure-skip-tls-verify"):
        raise fail(
            "insecure-skip-tls-verify is set: refused, the API server's certificate is always "
            "verified; remove it and name the certificate-authority instead"
        )
    server = str(cluster.get("server") or "")
    if not server.startswith("https://"):
        raise fail(f"server {server!r} must be an https:// URL")
    base = source.parent
    cert = _material(user, "client-certificate", base=base, fail=fail)
    key = _material(user, "client-key", base=base, fail=fail)
    if cert is None or key is None:
        raise fail(
            f"user {context.get('user')!r} has no client-certificate and client-key, "
            "which certificate mode needs"
        )
    name = cluster.get("tls-server-name")
    return KubeconfigEntry(
        source=source,
        server=server.rstrip("/"),
        tls_server_name=str(name) if name else None,
        ca=_material(cluster, "certificate-authority", base=base, fail=fail),
        client_cert=cert,
        client_key=key,
    )
