"""Fixtures more than one suite uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.conformance import check_exchange
from tests.support.recording import RecordingTransport


@pytest.fixture
def transport() -> Iterator[RecordingTransport]:
    """Records what an SDK client received; every answer is checked against the spec after
    the test."""
    recorder = RecordingTransport()
    yield recorder
    for exchange in recorder.exchanges:
        check_exchange(exchange)
