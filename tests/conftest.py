"""Fixtures more than one suite uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tests.support.conformance import check_exchange
from tests.support.recording import RecordingTransport
from tests.support.stores import postgres_schema


@pytest.fixture
def transport() -> Iterator[RecordingTransport]:
    """Records what an SDK client received; every answer is checked against the spec after
    the test."""
    recorder = RecordingTransport()
    yield recorder
    for exchange in recorder.exchanges:
        check_exchange(exchange)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the `test` database, selected through the DSN's search_path."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warmgate.db'}"
    else:
        yield request.getfixturevalue("postgres_url")
