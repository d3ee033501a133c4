"""The core stays pure: its modules import no I/O or front-end library.

Imports are read from the source with ``ast`` (not by importing), so a lazy import inside a
function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tjf_core

CORE = Path(tjf_core.__file__).parent

#: Third-party and stdlib modules that do I/O, and the front ends.
FORBIDDEN = {
    "aiohttp", "aiosmtplib", "aiosmtpd", "asyncio", "click", "http", "kubernetes", "requests",
    "shutil", "socket", "sqlite3", "ssl", "subprocess", "tempfile", "urllib", "urllib3",
    "tjf_cli", "tjf_emailer", "tjf_http",
}
#: Edges that are allowed to do I/O.
EDGES = {"kube", "local"}
#: The `python -m tjf_core` command reads its input file; it may use what a command needs.
COMMAND = {"__main__.py"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def _pure_modules() -> list[Path]:
    return sorted(
        p for p in CORE.rglob("*.py")
        if p.relative_to(CORE).parts[0] not in EDGES and p.name not in COMMAND
    )


def test_there_are_pure_modules_to_check() -> None:
    names = {p.name for p in _pure_modules()}
    assert {"model.py", "render.py", "convert.py", "schedule.py"} <= names


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_pure_module_imports_no_io_library(path: Path) -> None:
    bad = _imported_roots(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(CORE)} imports {sorted(bad)}"


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from kubernetes import client\n    import socket\n")
    assert _imported_roots(sample) & FORBIDDEN == {"kubernetes", "socket"}


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_never_imports_a_front_end(path: Path) -> None:
    assert not _imported_roots(path) & {"tjf_http", "tjf_cli", "tjf_emailer", "click",
                                        "aiohttp", "aiosmtplib"}
