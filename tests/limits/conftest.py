"""Fixtures for the limits tests: a fresh Redis prefix, a limiter that never runs its own rounds
(the fake wall clock and the asyncio backend come from tests/conftest.py)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own, so that no test sees another's counts in the shared Redis."""
    return f"warmgate:test:{secrets.token_hex(6)}"


async def no_background(_: float) -> None:
    """A limiter's `sleep` that never ends: its background rounds run only when a test calls
    `maintain()`."""
    await asyncio.Event().wait()
