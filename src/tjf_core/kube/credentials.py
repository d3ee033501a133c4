"""Whose credentials a request to the Kubernetes API carries, loaded once and kept fresh.

Certificate mode (Toolforge's way): a front end has verified that the caller IS tool ``foo``;
only then is ``foo``'s own kubeconfig, client certificate and key read from its home, so every
request is made with exactly the tool's rights. Each tool gets one ``ApiClient`` (a connection
pool), kept while its files stay the same: the kubeconfig and every file it names are
``stat``-ed on each use, and a change of inode, size or mtime (maintain-kubeusers renewing the
certificate) builds a new client and closes the old one. The certificate and key are read once
into an ``ssl.SSLContext``; the API server's certificate is always verified.

Impersonation mode: one client with the service's own credentials; each request carries
``Impersonate-User: <tool>`` and ``Impersonate-Group`` headers, so no tool's private key is
read and RBAC limits whom the service may impersonate.

Errors, each naming the tool and the file:

* a missing, unreadable or malformed kubeconfig, certificate or key, a key that does not match
  its certificate, ``insecure-skip-tls-verify``: :class:`ConfigurationError` (500). The tool did
  nothing wrong; its account is not (yet) set up, or the service is misconfigured.
* a certificate that has expired or is not valid yet: :class:`CertificateError` (401), saying
  when; it is renewed automatically, so trying again later is the remedy.
"""

from __future__ import annotations

import collections
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePath

import attrs
import urllib3
from cryptography import x509
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

from tjf_core.errors import CertificateError, ConfigurationError
from tjf_core.identity import ToolIdentity
from tjf_core.kube.kubeconfig import KubeconfigEntry, Material, parse_kubeconfig
from tjf_core.kube.settings import KubeSettings

__all__ = ["CredentialStore", "Credentials"]

#: Connection failures are retried at once (a new pod of the apiserver); reads only for
#: idempotent methods (urllib3's default), never a POST that may have been applied.
_RETRIES = urllib3.Retry(total=3, connect=2, read=1, status=0, redirect=0, backoff_factor=0.1)
Fingerprint = tuple[tuple[int, int, int, int] | None, ...]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(eq=False)
class Credentials:
    """A client and the headers that make its requests act as one tool (or as the service)."""

    client: ApiClient
    #: The API's base URL, without a trailing slash.
    server: str
    #: Extra headers for every request (the impersonation headers; a header may repeat).
    headers: tuple[tuple[str, str], ...]
    #: Whose credentials these are, for messages: ``the client certificate of tool 'x' (…)``.
    description: str


@attrs.frozen(eq=False)
class _Cached:
    credentials: Credentials
    files: tuple[Path, ...]
    fingerprint: Fingerprint
    cert_path: str
    not_before: datetime | None
    not_after: datetime | None


def _stat(path: Path) -> tuple[int, int, int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def _fingerprint(files: tuple[Path, ...]) -> Fingerprint:
    return tuple(_stat(path) for path in files)


def _read(path: PurePath, *, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{what} {path} does not exist: is the tool's Kubernetes account set up?"
        ) from None
    except OSError as error:
        raise ConfigurationError(f"{what} {path} cannot be read: {error.strerror}") from None


def _material(material: Material, *, what: str) -> bytes:
    if material.data is not None:
        return material.data
    assert material.path is not None  # a Material is a path or data
    return _read(material.path, what=what)


@contextmanager
def _as_file(data: bytes) -> Iterator[str]:
    """``data`` as a file name ``ssl`` can load: in memory where the kernel allows it."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("tjf-credential", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="tjf-credential-") as scratch:
        name = os.path.join(scratch, "pem")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield name


def _tls_context(
    *, ca: bytes | None, ca_text: str, cert: bytes, key: bytes, fail: str
) -> ssl.SSLContext:
    """A context that verifies the server (with ``ca``, else the system's CAs) and presents
    ``cert`` and ``key``, both loaded from the bytes given (what was checked is what is used).
    """
    try:
        context = ssl.create_default_context(
            cadata=ca.decode("ascii", "replace") if ca is not None else None
        )
    except (ssl.SSLError, ValueError) as error:
        reason = error.reason if isinstance(error, ssl.SSLError) else None
        raise ConfigurationError(
            f"the CA bundle {ca_text} cannot be used: {reason or error}"
        ) from None
    try:
        with _as_file(cert) as cert_file, _as_file(key) as key_file:
            context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as error:
        detail = error.reason if isinstance(error, ssl.SSLError) else error.strerror
        raise ConfigurationError(f"{fail}: {detail or error}") from None
    return context


def _validity(cert: bytes, *, path: str, owner: str) -> tuple[datetime, datetime]:
    try:
        parsed = x509.load_pem_x509_certificate(cert)
    except ValueError:
        raise ConfigurationError(
            f"the client certificate of {owner} ({path}) is not a PEM certificate"
        ) from None
    return parsed.not_valid_before_utc, parsed.not_valid_after_utc


def _check_validity(cached: _Cached, *, now: datetime, owner: str) -> None:
    when = "%Y-%m-%dT%H:%M:%SZ"
    if cached.not_after is not None and now > cached.not_after:
        raise CertificateError(
            f"the Kubernetes client certificate of {owner} ({cached.cert_path}) expired at "
            f"{cached.not_after.strftime(when)}; it is renewed automatically, try again later "
            "and ask the Toolforge admins if this persists"
        )
    if cached.not_before is not None and now < cached.not_before:
        raise CertificateError(
            f"the Kubernetes client certificate of {owner} ({cached.cert_path}) is not valid "
            f"before {cached.not_before.strftime(when)}; check the clock of this host"
        )


def _new_client(configuration: Configuration, *, tls: ssl.SSLContext | None) -> ApiClient:
    configuration.retries = _RETRIES
    client = ApiClient(configuration=configuration)
    if tls is not None:
        # The client only takes file names; our context holds the key read once, verifies the
        # server and keeps working while the files are being replaced.
        client.rest_client.pool_manager.connection_pool_kw["ssl_context"] = tls
    return client


def _close(credentials: Credentials) -> None:
    credentials.client.close()  # type: ignore[no-untyped-call]


class CredentialStore:
    """Per-tool credentials, cached and reloaded when their files change. Thread-safe."""

    def __init__(
        self, settings: KubeSettings, *, now: Callable[[], datetime] = _utc_now
    ) -> None:
        self.settings = settings
        self._now = now
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        self._tools: collections.OrderedDict[str, _Cached] = collections.OrderedDict()
        self._service: _Cached | None = None
        #: How many API clients were built (a reload builds one): for tests and metrics.
        self.builds = 0

    def for_tool(self, tool: ToolIdentity) -> Credentials:
        """The credentials that act as ``tool``, whose identity the caller has verified."""
        if self.settings.mode == "impersonation":
            return self._impersonating(tool)
        owner = f"tool {tool.tool!r}"
        cached = self._cached_tool(tool.tool)
        if cached is None:
            # Loads are rare (a first use, a rotation); one at a time, so that two requests
            # of a tool never build two clients and close the one the other is using.
            with self._loading:
                cached = self._cached_tool(tool.tool)
                if cached is None:
                    cached = self._replace(tool.tool, self._load_tool(tool, owner=owner))
        _check_validity(cached, now=self._now(), owner=owner)
        return cached.credentials

    def service(self) -> Credentials:
        """The service's own credentials (impersonation, and reading the image catalog)."""
        cached = self._service
        if cached is None or _fingerprint(cached.files) != cached.fingerprint:
            with self._loading:
                cached = self._service
                if cached is None or _fingerprint(cached.files) != cached.fingerprint:
                    cached = self._load_service()
                    with self._lock:
                        old, self._service = self._service, cached
                    if old is not None:
                        _close(old.credentials)
        return cached.credentials

    def close(self) -> None:
        """Close every client; the store can still be used (clients are built again)."""
        with self._lock:
            closing = [c.credentials for c in self._tools.values()]
            if self._service is not None:
                closing.append(self._service.credentials)
            self._tools.clear()
            self._service = None
        for credentials in closing:
            _close(credentials)

    # --- certificate mode ----------------------------------------------------------------

    def _cached_tool(self, tool: str) -> _Cached | None:
        """The tool's cached credentials if its files are unchanged, else None."""
        with self._lock:
            cached = self._tools.get(tool)
            if cached is not None:
                self._tools.move_to_end(tool)
        if cached is None or _fingerprint(cached.files) != cached.fingerprint:
            return None
        return cached

    def _replace(self, tool: str, fresh: _Cached) -> _Cached:
        closing: list[Credentials] = []
        with self._lock:
            old = self._tools.pop(tool, None)
            if old is not None:
                closing.append(old.credentials)
            self._tools[tool] = fresh
            while len(self._tools) > self.settings.max_cached_tools:
                closing.append(self._tools.popitem(last=False)[1].credentials)
        for credentials in closing:
            _close(credentials)
        return fresh

    def _kubeconfig_path(self, tool: ToolIdentity) -> Path:
        template = self.settings.kubeconfig_template
        try:
            return Path(template.format(home=tool.home, tool=tool.tool))
        except (KeyError, IndexError, ValueError):
            raise ConfigurationError(
                f"kubeconfig_template {template!r} cannot be filled: use {{home}} and {{tool}}"
            ) from None

    def _load_tool(self, tool: ToolIdentity, *, owner: str) -> _Cached:
        path = self._kubeconfig_path(tool)
        before = _stat(path)
        raw = _read(path, what=f"the kubeconfig of {owner}")
        entry = parse_kubeconfig(raw.decode("utf-8", "replace"), source=path, owner=owner)
        ca = Material(path=Path(self.settings.ca_file)) if self.settings.ca_file else entry.ca
        files = (path, *(Path(m.path) for m in (ca, entry.client_cert, entry.client_key)
                        if m is not None and m.path is not None))
        # Stat before reading: a file replaced meanwhile only costs one more reload.
        fingerprint = (before, *_fingerprint(files[1:]))
        cert_text = entry.client_cert.describe(path)
        cert = _material(entry.client_cert, what=f"the client certificate of {owner}")
        key = _material(entry.client_key, what=f"the client key of {owner}")
        ca_pem = _material(ca, what="the CA bundle") if ca is not None else None
        not_before, not_after = _validity(cert, path=cert_text, owner=owner)
        tls = _tls_context(
            ca=ca_pem, ca_text=ca.describe(path) if ca is not None else "", cert=cert, key=key,
            fail=(f"the client certificate ({cert_text}) and key "
                  f"({entry.client_key.describe(path)}) of {owner} cannot be used"),
        )
        credentials = Credentials(
            client=self._client_for(entry, tls),
            server=entry.server,
            headers=(),
            description=f"the client certificate of {owner} ({cert_text})",
        )
        return _Cached(credentials=credentials, files=files, fingerprint=fingerprint,
                       cert_path=cert_text, not_before=not_before, not_after=not_after)

    def _client_for(self, entry: KubeconfigEntry, tls: ssl.SSLContext) -> ApiClient:
        configuration = Configuration(host=entry.server, tls_server_name=entry.tls_server_name)
        self.builds += 1
        return _new_client(configuration, tls=tls)

    # --- impersonation mode --------------------------------------------------------------

    def _impersonating(self, tool: ToolIdentity) -> Credentials:
        service = self.service()
        user = self.settings.impersonate_user_template.format(tool=tool.tool)
        headers = (("Impersonate-User", user),
                   *(("Impersonate-Group", group) for group in self.settings.impersonate_groups))
        return Credentials(
            client=service.client, server=service.server, headers=headers,
            description=f"{service.description} (impersonating tool {tool.tool!r})",
        )

    def _load_service(self) -> _Cached:
        path = self.settings.service_kubeconfig
        configuration = Configuration()
        where = f"kubeconfig {path}" if path else "in-cluster service account"
        files: tuple[Path, ...] = (Path(path),) if path else ()
        fingerprint = _fingerprint(files)
        try:
            if path:
                kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=path, client_configuration=configuration, persist_config=False
                )
            else:
                kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
        except Exception as error:  # the loaders raise many kinds; each means "unusable"
            raise ConfigurationError(
                f"the service's own Kubernetes credentials ({where}) cannot be loaded: {error}; "
                "set service_kubeconfig (or images_file for the image catalog)"
            ) from None
        if not configuration.verify_ssl:
            raise ConfigurationError(
                f"the service's {where} sets insecure-skip-tls-verify: refused, the API "
                "server's certificate is always verified"
            )
        self.builds += 1
        credentials = Credentials(
            client=_new_client(configuration, tls=None),
            server=str(configuration.host).rstrip("/"),
            headers=(),
            description=f"the service's own credentials ({where})",
        )
        return _Cached(credentials=credentials, files=files, fingerprint=fingerprint,
                       cert_path=where, not_before=None, not_after=None)
