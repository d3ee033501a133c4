"""The runtime contract (``tests/runtime_contract.py``) on the local runtime, with real processes.

The same cases that run on the in-memory fake and on a real kube-apiserver run here: every job
is a real ``/bin/sh`` process in the tool's home, and the driver makes it run, exit or crash
(see :mod:`tests.local.harness`, also for when the runtime starts supervising).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.harness import LocalHarness
from tests.runtime_contract import RuntimeContract, RuntimeHarness


class TestLocalRuntime(RuntimeContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[RuntimeHarness]:
        yield from LocalHarness.open(tmp_path, started=False)
