"""300 simultaneous requests from one key through the gateway with Redis limits: each limit
holds exactly, however many of them wait for Redis at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from tests.billing.edge import Edge, edge_settings, running_edge, sim_cluster
from tests.support.stores import REDIS_URL

pytestmark = pytest.mark.redis

BURST = 300
MESSAGES: Any = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    sim = sim_cluster()
    ledger = tmp_path_factory.mktemp("burst") / "ledger.db"
    try:
        settings = edge_settings(f"sqlite:///{ledger}", list(sim.urls), redis_url=REDIS_URL)
        with running_edge(settings) as running:
            yield running
    finally:
        sim.stop()


async def burst(edge: Edge, secret: str, *, stream: bool) -> tuple[int, int]:
    """(answered, refused with 429) of BURST requests sent at once. Streams that were answered
    stay open until every request has its answer, so they are all in flight together."""
    # The SDK's own pool allows 1,000 connections: every request has one of its own.
    async with AsyncOpenAI(
        base_url=edge.base_url, api_key=secret, max_retries=0, timeout=60
    ) as client:
        start = asyncio.Event()

        async def one() -> Any:
            await start.wait()
            try:
                return await client.chat.completions.create(
                    model="demo",
                    messages=MESSAGES,
                    max_tokens=2000 if stream else 1,
                    stream=stream,
                )
            except openai.RateLimitError:
                return None

        calls = [asyncio.create_task(one()) for _ in range(BURST)]
        start.set()
        answers = await asyncio.gather(*calls)
        answered = [a for a in answers if a is not None]
        for held in answered:
            if stream:
                await held.close()
    return len(answered), BURST - len(answered)


def in_one_minute(run: Any) -> tuple[int, int]:
    """Run `run` again with a fresh key when a minute window ended during it."""
    for _ in range(3):
        started = time.time()
        result: tuple[int, int] = run()
        if int(started // 60) == int(time.time() // 60):
            return result
    raise AssertionError("three minute windows ended during three runs")


def test_a_quota_of_20_admits_exactly_20_of_300_simultaneous_requests(edge: Edge) -> None:
    _, secret = edge.create_key(quota=20, quota_period="day")
    assert asyncio.run(burst(edge, secret, stream=False)) == (20, 280)


def test_an_rpm_of_30_admits_exactly_30_of_300_simultaneous_requests(edge: Edge) -> None:
    def run() -> tuple[int, int]:
        _, secret = edge.create_key(rpm=30)
        return asyncio.run(burst(edge, secret, stream=False))

    assert in_one_minute(run) == (30, 270)


def test_a_concurrency_of_2_holds_exactly_2_of_300_simultaneous_streams(edge: Edge) -> None:
    _, secret = edge.create_key(max_concurrency=2)
    assert asyncio.run(burst(edge, secret, stream=True)) == (2, 298)
