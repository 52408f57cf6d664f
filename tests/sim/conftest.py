"""Simulator fixtures: real replicas on free loopback ports, inside the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from tests.sim import sglang_wheel
from warmgate.backends.sim import SimCluster, SimConfig


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(model="demo", time_scale=0.0, enable_metrics=True, enable_cache_report=True)


@pytest.fixture
async def cluster(sim_config: SimConfig) -> AsyncIterator[SimCluster]:
    async with SimCluster(sim_config, replicas=1) as running:
        yield running


@pytest.fixture
async def http(cluster: SimCluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.urls[0], timeout=30.0) as client:
        yield client


@pytest.fixture
async def sdk(cluster: SimCluster) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=cluster.urls[0] + "/v1", api_key="unused", max_retries=0)
    async with client:
        yield client


@pytest.fixture(scope="session")
def sglang() -> Any:
    """SGLang 0.5.23's protocol.py (its pydantic request and response models)."""
    return sglang_wheel.protocol()
