"""Fixtures for the limits tests: a fake wall clock, the asyncio backend, a fresh Redis prefix."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from tests.billing.conftest import FakeClock

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own, so that no test sees another's counts in the shared Redis."""
    return f"warmgate:test:{secrets.token_hex(6)}"


async def no_background(_: float) -> None:
    """A limiter's `sleep` that never ends: its background rounds run only when a test calls
    `maintain()`."""
    await asyncio.Event().wait()
