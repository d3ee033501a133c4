"""The tool's client certificate, for :mod:`tjf_http.client`: from a kubeconfig or from files.

A Toolforge tool's kubeconfig (``$KUBECONFIG``, else ``~/.kube/config``) names, in the user of
its current context, the certificate the jobs API knows the tool by: ``client-certificate`` /
``client-key`` files (relative paths are relative to the kubeconfig's directory) or the PEM
text itself, base64-encoded, in ``client-certificate-data`` / ``client-key-data`` (which win,
as in kubectl). ``$KUBECONFIG`` may list several files (``:``-separated): as kubectl does, the
first file that sets ``current-context`` sets it, and the first definition of a context or a
user wins.

On a local ``tjf-api``'s unix socket there is no certificate: the server knows the caller by
the socket's peer credentials, and the tool is the caller's unix user
(:func:`unix_user_name`).

Only PyYAML reads the file (imported when needed, as is cryptography to read the certificate's
name and validity): the command line client imports this module on every start.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tjf_core.errors import ConfigurationError

if TYPE_CHECKING:
    import ssl

__all__ = ["CertificateFacts", "ClientCertificate", "certificate_from_kubeconfig",
           "kubeconfig_files", "unix_user_name"]


@attrs.frozen(kw_only=True)
class ClientCertificate:
    """A certificate and its key: each a PEM file, or PEM bytes."""

    cert: Path | bytes
    key: Path | bytes
    #: Where they came from, for messages (``kubeconfig /x/config, user 'tf-x'``).
    source: str = "the client certificate"

    @classmethod
    def from_files(cls, cert: str | Path, key: str | Path) -> ClientCertificate:
        return cls(cert=Path(cert), key=Path(key), source=f"certificate file {str(cert)!r}")

    def load_into(self, context: ssl.SSLContext) -> None:
        """Present this certificate on ``context``'s connections."""
        if isinstance(self.cert, Path) and isinstance(self.key, Path):
            self._load_files(context, self.cert, self.key)
            return
        import tempfile  # only for embedded data: it costs a cold start ~8 ms

        # ssl reads certificates from files only: bytes go through a private temporary file.
        with tempfile.TemporaryDirectory(prefix="tjf-client-") as scratch:
            cert, key = (_as_file(part, Path(scratch), name)
                         for part, name in ((self.cert, "cert.pem"), (self.key, "key.pem")))
            self._load_files(context, cert, key)

    def _load_files(self, context: ssl.SSLContext, cert: Path, key: Path) -> None:
        import ssl

        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(f"{self.source} cannot be loaded (does the key belong "
                                     f"to the certificate?): {error}") from None

    def read(self) -> CertificateFacts:
        """The certificate's CN and validity, read with ``cryptography`` (imported now).

        ConfigurationError when the file cannot be read or holds no PEM certificate.
        """
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        try:
            pem = self.cert.read_bytes() if isinstance(self.cert, Path) else self.cert
            certificate = x509.load_pem_x509_certificate(pem)
            names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        except OSError as error:
            raise ConfigurationError(f"{self.source} cannot be read: "
                                     f"{error.strerror or error}") from None
        except ValueError as error:
            raise ConfigurationError(f"the client certificate of {self.source} cannot be read "
                                     f"({error}): is it a PEM certificate?") from None
        value = names[0].value if names else None
        return CertificateFacts(
            common_name=value.decode() if isinstance(value, bytes) else value,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc)

    def common_name(self) -> str:
        """The certificate's CN: the tool it names."""
        name = self.read().common_name
        if not name:
            raise ConfigurationError(f"{self.source} has no CN: it names no tool")
        return name


@attrs.frozen(kw_only=True)
class CertificateFacts:
    """What a client needs to know of its certificate: the tool it names, and when it is valid."""

    common_name: str | None
    not_before: datetime
    not_after: datetime


def _as_file(part: Path | bytes, scratch: Path, name: str) -> Path:
    if isinstance(part, Path):
        return part
    path = scratch / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(part)
    return path


def kubeconfig_files(environ: Mapping[str, str], home: Path) -> list[Path]:
    """The kubeconfig files to read: ``$KUBECONFIG``'s list, else ``~/.kube/config``."""
    listed = [Path(entry) for entry in environ.get("KUBECONFIG", "").split(os.pathsep) if entry]
    return listed or [home / ".kube" / "config"]


def _load(path: Path) -> Mapping[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigurationError(f"kubeconfig {str(path)!r} cannot be read: "
                                 f"{error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigurationError(f"kubeconfig {str(path)!r} is not valid YAML: "
                                 f"{error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"kubeconfig {str(path)!r} is not a mapping of keys")
    return data


def _named(config: Mapping[str, Any], key: str, path: Path) -> dict[str, Mapping[str, Any]]:
    """``contexts``/``users``: name -> the entry's inner mapping."""
    entries = config.get(key) or []
    found: dict[str, Mapping[str, Any]] = {}
    if not isinstance(entries, list):
        raise ConfigurationError(f"kubeconfig {str(path)!r}: {key} must be a list")
    singular = key.removesuffix("s")
    for entry in entries:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            inner = entry.get(singular)
            found.setdefault(entry["name"], inner if isinstance(inner, Mapping) else {})
    return found


@attrs.frozen
class _Defined:
    entry: Mapping[str, Any]
    path: Path


def certificate_from_kubeconfig(
    path: Path | None = None, *, context: str | None = None,
    environ: Mapping[str, str] | None = None, home: Path | None = None,
) -> ClientCertificate:
    """The client certificate of ``context`` (default: the current one) of a kubeconfig.

    ``path`` (a file) is read, else the files of :func:`kubeconfig_files` that exist
    (``environ`` and ``home`` default to the process's).
    """
    if path is not None:
        files = [path]
    else:
        candidates = kubeconfig_files(os.environ if environ is None else environ,
                                      Path.home() if home is None else home)
        files = [candidate for candidate in candidates if candidate.exists()]
        if not files:
            shown = ", ".join(repr(str(candidate)) for candidate in candidates)
            raise ConfigurationError(f"no kubeconfig found (looked for {shown}): give the "
                                     "tool's certificate and key, or set KUBECONFIG")
    current: str | None = None
    contexts: dict[str, _Defined] = {}
    users: dict[str, _Defined] = {}
    for file in files:
        config = _load(file)
        current = current or config.get("current-context") or None
        for name, entry in _named(config, "contexts", file).items():
            contexts.setdefault(name, _Defined(entry, file))
        for name, entry in _named(config, "users", file).items():
            users.setdefault(name, _Defined(entry, file))
    where = "kubeconfig " + ", ".join(repr(str(file)) for file in files)
    chosen = context or current
    if not chosen:
        raise ConfigurationError(f"{where} has no current-context: name the context to use")
    if chosen not in contexts:
        raise ConfigurationError(f"{where}: context {chosen!r} is not defined; defined: "
                                 f"{', '.join(sorted(contexts)) or 'none'}")
    user_name = contexts[chosen].entry.get("user")
    if not isinstance(user_name, str) or user_name not in users:
        raise ConfigurationError(f"{where}: the user {user_name!r} of context {chosen!r} is "
                                 "not defined")
    user = users[user_name]
    source = f"kubeconfig {str(user.path)!r}, user {user_name!r}"
    return ClientCertificate(
        cert=_part(user, "client-certificate", source=source),
        key=_part(user, "client-key", source=source),
        source=source)


def _part(user: _Defined, key: str, *, source: str) -> Path | bytes:
    data = user.entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{source}: {key}-data is not base64 text") from None
    file = user.entry.get(key)
    if file:
        given = Path(str(file))
        return given if given.is_absolute() else user.path.parent / given
    raise ConfigurationError(f"{source} has no {key} (nor {key}-data): the jobs API needs "
                             "the tool's client certificate and key")


def unix_user_name() -> str:
    """The name of this process's effective unix user: who a local jobs API takes it for.

    The server reads the same name from the socket's peer credentials (the effective uid).
    ConfigurationError when the user database has no name for the uid (e.g. a container run
    with a bare ``--user 12345``).
    """
    import pwd

    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        raise ConfigurationError(
            f"this process's user (uid {uid}) has no name in the user database, and a local "
            "jobs API knows tools by their user's name: run it as the tool's user, or name "
            "the tool (tool=...)") from None
