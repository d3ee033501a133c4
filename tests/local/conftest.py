"""Fixtures of the local runtime's tests: a started harness, closed after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.harness import LocalHarness


@pytest.fixture
def h(tmp_path: Path) -> Iterator[LocalHarness]:
    yield from LocalHarness.open(tmp_path)
