"""Where the command line client finds the jobs API: layered YAML files, then the environment.

Toolforge's login hosts configure every ``toolforge`` client the same way, so these files are
shared with other clients (their other keys are ignored). Read in this order, a later file
overriding single keys of an earlier one:

1. ``/etc/toolforge/common.yaml`` (the site's defaults for every client),
2. ``/etc/toolforge/jobs-cli.yaml`` (the site's settings of this client),
3. ``~/.toolforge.yaml`` (a user's or tool's own),
4. ``$XDG_CONFIG_HOME/toolforge.yaml`` (``~/.config/toolforge.yaml`` by default).

Keys: ``api_gateway.url`` (``https://host[:port]``), ``api_gateway.ca_file`` (the CA that signs
the API's certificate; default: the system's store), ``jobs.jobs_endpoint`` (the jobs API's path
under the gateway, default ``/jobs``), ``jobs.timeout`` (seconds to wait for an answer, default
30), ``jobs.mode`` (``api``, or ``direct`` to call Kubernetes with the tool's own kubeconfig,
without the API server) and, for direct mode, ``jobs.images_file`` (the image catalog as a
file, instead of the cluster's ConfigMap). ``TJF_API_URL`` replaces the whole jobs API URL
(gateway and endpoint).

A local ``tjf-api``'s socket is a URL too, ``unix:///path/api.sock``: it has no gateway in
front, so ``jobs.jobs_endpoint`` is not added to it. When nothing here configures a URL, the
client looks for a local API's socket (:func:`tjf_cli.backend.with_local_api`).

Every value keeps the file (or variable) it came from, so a message can say where to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from tjf_core.errors import ConfigurationError

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_TIMEOUT", "CliConfig", "config_files", "load_config"]

DEFAULT_ENDPOINT = "/jobs"
DEFAULT_TIMEOUT = 30.0
SYSTEM_DIR = Path("/etc/toolforge")

Mode = Literal["api", "direct"]


@attrs.frozen(kw_only=True)
class CliConfig:
    """The client's settings, each with where it came from."""

    #: The jobs API (gateway URL + endpoint); None when nothing configures it.
    api_url: str | None = None
    #: Which file or variable set ``api_url`` (for messages).
    api_url_source: str = "nothing"
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    mode: Mode = "api"
    images_file: str | None = None
    #: The configuration files that were read, in order.
    files: tuple[str, ...] = ()


def config_files(environ: Mapping[str, str], *, home: Path,
                 system_dir: Path = SYSTEM_DIR) -> list[Path]:
    """The configuration files to read, earliest (least important) first."""
    xdg = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return [system_dir / "common.yaml", system_dir / "jobs-cli.yaml", home / ".toolforge.yaml",
            Path(xdg) / "toolforge.yaml"]


def _read(path: Path) -> Mapping[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigurationError(f"configuration file {str(path)!r} cannot be read: "
                                 f"{error.strerror}; fix its permissions or remove it") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or "syntax error"
        raise ConfigurationError(f"configuration file {str(path)!r} is not valid YAML{where}: "
                                 f"{reason}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"configuration file {str(path)!r} must be a mapping of keys, "
                                 "e.g. 'api_gateway: {url: https://...}'")
    return data


def _merge(into: dict[str, tuple[Any, str]], data: Mapping[str, Any], *, source: str,
           prefix: str = "") -> None:
    """Flatten ``data`` into dotted keys, each with the file that set it."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _merge(into, value, source=source, prefix=f"{dotted}.")
        else:
            into[dotted] = (value, source)


def _text(values: Mapping[str, tuple[Any, str]], key: str) -> tuple[str | None, str]:
    value, source = values.get(key, (None, ""))
    if value is None:
        return None, source
    if not isinstance(value, str):
        raise ConfigurationError(f"{source}: {key}: {value!r} is not allowed, use text")
    return value, source


def load_config(environ: Mapping[str, str], *, home: Path,
                system_dir: Path = SYSTEM_DIR) -> CliConfig:
    """The settings from the files of :func:`config_files` and ``TJF_API_URL``."""
    files = config_files(environ, home=home, system_dir=system_dir)
    values: dict[str, tuple[Any, str]] = {}
    read: list[str] = []
    for path in files:
        data = _read(path)
        if data:
            read.append(str(path))
        _merge(values, data, source=f"configuration file {str(path)!r}")

    gateway, gateway_source = _text(values, "api_gateway.url")
    endpoint, _ = _text(values, "jobs.jobs_endpoint")
    url: str | None = None
    url_source = "nothing"
    if environ.get("TJF_API_URL"):
        url, url_source = environ["TJF_API_URL"], "the environment variable TJF_API_URL"
    elif gateway and gateway.lower().startswith("unix:"):
        url, url_source = gateway, f"api_gateway.url of the {gateway_source}"
    elif gateway:
        url = gateway.rstrip("/") + (DEFAULT_ENDPOINT if endpoint is None else endpoint)
        url_source = f"api_gateway.url of the {gateway_source}"

    timeout, timeout_source = values.get("jobs.timeout", (DEFAULT_TIMEOUT, ""))
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError(f"{timeout_source}: jobs.timeout: {timeout!r} is not allowed, "
                                 "use a number of seconds above 0")
    mode, mode_source = _text(values, "jobs.mode")
    if mode not in (None, "api", "direct"):
        raise ConfigurationError(f"{mode_source}: jobs.mode: {mode!r} is not allowed, use api "
                                 "or direct")
    ca_file, _ = _text(values, "api_gateway.ca_file")
    images_file, _ = _text(values, "jobs.images_file")
    return CliConfig(
        api_url=url, api_url_source=url_source,
        ca_file=os.path.expanduser(ca_file) if ca_file else None,
        timeout=float(timeout), mode="direct" if mode == "direct" else "api",
        images_file=os.path.expanduser(images_file) if images_file else None,
        files=tuple(read),
    )
