"""Fixtures for keys, limits and the ledger: real SQLite files, a simulated replica, PostgreSQL
behind a relay that cuts it (fresh PostgreSQL schemas, the clock and the asyncio backend come from
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cut_relay import CutRelay
from tests.billing.edge import sim_cluster


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warmgate.db'}"


@pytest.fixture(scope="module")
def demo_sim() -> Iterator[Any]:
    """One simulated replica of `demo` in real time, for the tests of a module; a module that
    needs more replicas defines its own."""
    cluster = sim_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def relay() -> Iterator[CutRelay]:
    """PostgreSQL behind a relay that a test cuts, partitions and restores."""
    with CutRelay("127.0.0.1", 5432) as cut:
        yield cut
