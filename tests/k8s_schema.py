"""Strict Kubernetes schema checks for rendered manifests, fast enough for property tests.

kubernetes_validate.validate() reads and parses the JSON schema files on every call, far too slow
for hundreds of hypothesis examples. Here each (Kubernetes version, kind, apiVersion) gets one
``Draft202012Validator``, built once from the same bundled files and wired the same way (the
kind's schema and ``_definitions.json`` in a ``referencing.Registry``), then reused. The
"-strict" schemas refuse unknown fields, so a misspelt key fails the check.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies
from referencing import Registry, Resource

__all__ = ["DEFAULT_VERSIONS", "assert_valid", "schema_errors", "validator_for"]

DEFAULT_VERSIONS = ("1.29", "1.33")

_SCHEMAS = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"


@functools.cache
def _read(directory: str, filename: str) -> Any:
    return json.loads((_SCHEMAS / directory / filename).read_text("utf-8"))


def _file_name(kind: str, api_version: str) -> str:
    # The files drop the group's domain: apps/v1 -> apps-v1, v1 -> v1, batch/v1 -> batch-v1.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}.json"


@functools.cache
def validator_for(version: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    """The strict validator for ``kind`` in ``api_version`` on Kubernetes ``version`` (1.29)."""
    directory = f"v{version}.0-local-strict"
    schema = _read(directory, _file_name(kind, api_version))
    definitions = _read(directory, "_definitions.json")
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(manifest: Mapping[str, Any], *, version: str) -> list[str]:
    """Every schema error of ``manifest`` on Kubernetes ``version``, as ``path: message``."""
    validator = validator_for(version, manifest["kind"], manifest["apiVersion"])
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.path)))
    return [
        f"{'.'.join(str(p) for p in error.path) or '<root>'}: {error.message}" for error in errors
    ]


def assert_valid(
    manifest: Mapping[str, Any], versions: Iterable[str] = DEFAULT_VERSIONS
) -> None:
    """Raise AssertionError naming the first schema error of ``manifest`` on any version."""
    for version in versions:
        errors = schema_errors(manifest, version=version)
        if errors:
            name = manifest.get("metadata", {}).get("name")
            raise AssertionError(
                f"{manifest['kind']} {name!r} is not valid on Kubernetes {version}: {errors[0]}"
            )
