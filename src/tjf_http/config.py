"""The server's configuration, from a TOML file, ``TJF_*`` environment variables and flags.

Every setting lives in a section named like its settings class's group: ``[server]``,
``[tls]``, ``[trusted]``, ``[ops]`` (:mod:`tjf_http.settings`), ``[identity]``, ``[render]``
(:mod:`tjf_core.settings`), ``[kubernetes]`` (``tjf_core.kube.KubeSettings``, imported only
when that runtime is chosen), ``[memory]``, ``[local]`` (:mod:`tjf_http.local_settings`) and
``[emailer]`` (local mode's embedded emailer, :mod:`tjf_http.local_emailer`); plus the
top-level ``runtime``: ``local`` when no cluster is configured
(:func:`~tjf_http.local_settings.choose_runtime`). The same setting
is ``TJF_<SECTION>_<KEY>`` in the environment (``TJF_TLS_CERT_FILE``, ``TJF_RUNTIME``) and
``--set section.key=value`` on the command line. Later sources win: defaults, file,
environment, flags.

Values are checked against the settings classes' own types, so a typo'd key or a wrong type is
refused at start with its place (``tls.port``) and what is allowed, never half-applied.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import attrs

from tjf_core.errors import ConfigurationError
from tjf_core.settings import IdentitySettings, RenderSettings, Settings
from tjf_http.local_settings import LocalModeSettings, choose_runtime
from tjf_http.settings import (
    HttpSettings,
    OpsListenerSettings,
    ServerSettings,
    TlsListenerSettings,
    TrustedListenerSettings,
)

__all__ = [
    "SECTIONS",
    "Config",
    "MemorySettings",
    "RuntimeName",
    "load_config",
    "masked",
    "parse_assignment",
]

RuntimeName = Literal["local", "kubernetes", "memory"]
_RUNTIMES = ("local", "kubernetes", "memory")
_T = TypeVar("_T")
_SECRET = re.compile(r"password|secret|token", re.IGNORECASE)


@attrs.frozen(kw_only=True)
class MemorySettings:
    """The in-memory runtime (demos and tests): nothing runs, objects live in the process."""

    #: Seconds every runtime call waits, to make a demo (or a test) feel like a cluster.
    delay_seconds: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.delay_seconds < 0:
            raise ConfigurationError(
                f"memory.delay_seconds {self.delay_seconds} must be 0 or more")


#: Sections of the file whose classes are known up front, with their defaults.
SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "tls": TlsListenerSettings,
    "trusted": TrustedListenerSettings,
    "ops": OpsListenerSettings,
    "identity": IdentitySettings,
    "render": RenderSettings,
    "memory": MemorySettings,
    "local": LocalModeSettings,
}
_KUBE = "kubernetes"
#: Kept as given, read by the runtime that needs them: the cluster's and the local emailer's.
_EMAILER = "emailer"
_RAW = (_KUBE, _EMAILER)


@attrs.frozen(kw_only=True)
class Config:
    """The whole effective configuration of one server."""

    runtime: RuntimeName = "kubernetes"
    http: HttpSettings = attrs.field(factory=HttpSettings)
    core: Settings = attrs.field(factory=Settings)
    memory: MemorySettings = attrs.field(factory=MemorySettings)
    #: ``[kubernetes]`` as given; made a KubeSettings (and checked) by :meth:`kube_settings`.
    kubernetes: Mapping[str, Any] = attrs.field(factory=dict)
    #: ``[local]``, its places filled in for this server's user when the runtime is local.
    local: LocalModeSettings = attrs.field(factory=LocalModeSettings)
    #: ``[emailer]`` as given; see :meth:`emailer_settings`.
    emailer: Mapping[str, Any] = attrs.field(factory=dict)

    def kube_settings(self) -> Any:
        """The ``tjf_core.kube.KubeSettings``; imported here so the memory runtime needs none."""
        from tjf_core.kube.settings import KubeSettings

        return _build(KubeSettings, self.kubernetes, section=_KUBE)

    def emailer_settings(self) -> Any:
        """Local mode's embedded emailer's ``EmailerSettings``; None when it is off."""
        if self.runtime != "local":
            return None
        from tjf_http.local_emailer import embedded_emailer_settings

        return embedded_emailer_settings(self.emailer, local=self.local)

    def as_dict(self) -> dict[str, Any]:
        """Every setting by section, as ``--check-config`` prints it (before masking)."""
        sections: dict[str, Any] = {"runtime": self.runtime}
        for name, value in (("server", self.http.server), ("tls", self.http.tls),
                            ("trusted", self.http.trusted), ("ops", self.http.ops),
                            ("identity", self.core.identity), ("render", self.core.render),
                            ("memory", self.memory)):
            sections[name] = attrs.asdict(value)
        if self.runtime == _KUBE:
            sections[_KUBE] = attrs.asdict(self.kube_settings())
        if self.runtime == "local":
            sections["local"] = attrs.asdict(self.local)
            sections[_EMAILER] = {**self.emailer,
                                  "enabled": self.emailer_settings() is not None}
        return sections


def masked(data: Any, key: str = "") -> Any:
    """``data`` with the values of secret-looking keys (password, secret, token) hidden."""
    if isinstance(data, Mapping):
        return {k: masked(v, str(k)) for k, v in data.items()}
    if _SECRET.search(key) and data not in (None, ""):
        return "***"
    if isinstance(data, list | tuple):
        return [masked(item) for item in data]
    return data


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``section.key=value`` (a ``--set`` flag) as (section, key, value)."""
    name, equals, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not equals or not dot or not section or not key:
        raise ConfigurationError(f"--set {text!r} is not section.key=value, e.g. tls.port=8443")
    return section, key, value


def load_config(
    *, file: Path | None = None, environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, str], str] | None = None,
) -> Config:
    """The configuration from a TOML ``file``, then ``environ`` (``TJF_*``), then ``overrides``.

    ``overrides`` are (section, key) -> text, as flags give them; section ``""`` is the top.
    """
    raw: dict[str, dict[str, Any]] = {"": {}}
    if file is not None:
        _merge_file(raw, file)
    for (section, key), value in _from_environ(environ or {}).items():
        raw.setdefault(section, {})[key] = value
    for (section, key), value in (overrides or {}).items():
        raw.setdefault(section, {})[key] = value
    return _config_from(raw, environ=environ or {})


def _merge_file(raw: dict[str, dict[str, Any]], file: Path) -> None:
    try:
        data = tomllib.loads(file.read_text("utf-8"))
    except OSError as error:
        raise ConfigurationError(f"config file {str(file)!r} cannot be read: "
                                 f"{error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"config file {str(file)!r} is not valid TOML: {error}") from None
    for key, value in data.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[""][key] = value


def _from_environ(environ: Mapping[str, str]) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for name, value in environ.items():
        if not name.startswith("TJF_"):
            continue
        rest = name[4:].lower()
        if rest == "runtime":
            found["", "runtime"] = value
            continue
        section, _, key = rest.partition("_")
        # Other TJF_ variables (another component's) are not ours to refuse.
        if key and (section in SECTIONS or section in _RAW):
            found[section, key] = value
    return found


def _config_from(raw: dict[str, dict[str, Any]], *, environ: Mapping[str, str]) -> Config:
    top = raw.pop("")
    unknown_top = set(top) - {"runtime"}
    unknown_sections = set(raw) - set(SECTIONS) - set(_RAW)
    if unknown_top or unknown_sections:
        known = ["runtime", *SECTIONS, *_RAW]
        raise ConfigurationError("; ".join(
            _unknown(name, known, what="setting" if name in unknown_top else "section")
            for name in sorted(unknown_top | unknown_sections)))
    chosen = choose_runtime(top.get("runtime"), environ=environ,
                            sections=[name for name, values in raw.items() if values])
    if chosen not in _RUNTIMES:
        raise ConfigurationError(f"runtime {chosen!r} is not known, use local, kubernetes or "
                                 "memory")
    runtime = typing.cast(RuntimeName, chosen)
    if runtime == "local":
        # The local socket serves the API; TLS too only when its files are given.
        tls = raw.setdefault("tls", {})
        tls.setdefault("enabled", bool(tls.get("cert_file")))
    built = {name: _build(cls, raw.get(name, {}), section=name) for name, cls in SECTIONS.items()}
    local, identity = built["local"], built["identity"]
    if runtime == "local":
        local = local.resolved(environ, uid=os.geteuid())
        identity = attrs.evolve(identity, home_template=f"{local.root}/{{tool}}")
    http = HttpSettings(server=built["server"], tls=built["tls"], trusted=built["trusted"],
                        ops=built["ops"], local=local if runtime == "local" else None)
    http.check_listeners()
    config = Config(runtime=runtime, http=http, memory=built["memory"],
                    core=Settings(identity=identity, render=built["render"]),
                    kubernetes=dict(raw.get(_KUBE, {})), local=local,
                    emailer=dict(raw.get(_EMAILER, {})))
    if runtime == _KUBE:
        config.kube_settings()  # checked now, not at the first request
    config.emailer_settings()  # local mode's: checked now too
    return config


def _unknown(name: str, known: list[str], *, what: str) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {match[0]!r}?" if match else "use one of " + ", ".join(known)
    return f"{what} {name!r} is not known: {hint}"


def _build(cls: type[_T], values: Mapping[str, Any], *, section: str) -> _T:
    hints = typing.get_type_hints(cls)
    fields = [field.name for field in attrs.fields(typing.cast(Any, cls))]
    problems = [_unknown(f"{section}.{key}", [f"{section}.{f}" for f in fields], what="setting")
                for key in values if key not in fields]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in fields:
            try:
                kwargs[key] = _convert(value, hints[key])
            except ValueError as error:
                problems.append(f"{section}.{key}: {error}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    try:
        return cls(**kwargs)
    except ConfigurationError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"[{section}]: {error}") from None


def _convert(value: Any, hint: Any) -> Any:
    """``value`` (TOML data, or text from the environment or a flag) as type ``hint``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if type(None) in args and (value is None or (
                isinstance(value, str) and value.strip().lower() in ("", "none", "null"))):
            return None
        rest = [arg for arg in args if arg is not type(None)]
        return _convert(value, rest[0])
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{value!r} is not allowed, use one of "
                             + ", ".join(str(a) for a in args))
        return value
    if origin is tuple:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(
            value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise ValueError(f"{value!r} is not a list of text (comma-separated in the "
                             "environment)")
        return tuple(items)
    return _convert_scalar(value, hint)


def _convert_scalar(value: Any, hint: Any) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise ValueError(f"{value!r} is not allowed, use true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        raise ValueError(f"{value!r} is not allowed, use a whole number")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not allowed, use a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{value!r} is not allowed, use text")
    raise ValueError(f"settings of type {hint!r} cannot be read")  # a settings class's bug
