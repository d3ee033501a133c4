"""The tool's client certificate, for :mod:`tjf_http.client`: from a kubeconfig or from files.

A Toolforge tool's kubeconfig (``$KUBECONFIG``, else ``~/.kube/config``) names, in the user of
its current context, the certificate the jobs API knows the tool by: ``client-certificate`` /
``client-key`` files (relative paths are relative to the kubeconfig's directory) or the PEM
text itself, base64-encoded, in ``client-certificate-data`` / ``client-key-data`` (which win,
as in kubectl). ``$KUBECONFIG`` may list several files (``:``-separated): as kubectl does, the
first file that sets ``current-context`` sets it, and the first definition of a context or a
user wins.

Only PyYAML reads the file (imported when needed, as is cryptography for the tool's name):
the command line client imports this module on every start.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tjf_core.errors import ConfigurationError

if TYPE_CHECKING:
    import ssl

__all__ = ["ClientCertificate", "certificate_from_kubeconfig", "kubeconfig_files"]


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
        import ssl
        import tempfile

        # ssl reads certificates from files only: bytes go through a private temporary file.
        with tempfile.TemporaryDirectory(prefix="tjf-client-") as scratch:
            cert, key = (_as_file(part, Path(scratch), name)
                         for part, name in ((self.cert, "cert.pem"), (self.key, "key.pem")))
            try:
                context.load_cert_chain(str(cert), str(key))
            except (OSError, ssl.SSLError) as error:
                raise ConfigurationError(f"{self.source} cannot be loaded (does the key belong "
                                         f"to the certificate?): {error}") from None

    def common_name(self) -> str:
        """The certificate's CN: the tool it names."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        try:
            pem = self.cert.read_bytes() if isinstance(self.cert, Path) else self.cert
            certificate = x509.load_pem_x509_certificate(pem)
            names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        except (OSError, ValueError) as error:
            raise ConfigurationError(f"{self.source} cannot be read: {error}") from None
        if not names:
            raise ConfigurationError(f"{self.source} has no CN: it names no tool")
        value = names[0].value
        return value if isinstance(value, str) else value.decode()


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
