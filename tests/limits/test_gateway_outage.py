"""The gateway with its Redis behind a fault proxy: an outage never opens the limits, and a
blip while a request ends does not lock its key out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from benchmarks.fault_proxy import FaultProxyThread
from tests.billing.edge import Edge, edge_settings, running_edge, sim_cluster
from tests.limits.conftest import REDIS_HOST, REDIS_PORT

pytestmark = pytest.mark.redis

MESSAGES: Any = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def demo_sim() -> Iterator[Any]:
    cluster = sim_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_proxy() -> Iterator[FaultProxyThread]:
    with FaultProxyThread(REDIS_HOST, REDIS_PORT) as proxy:
        yield proxy


@pytest.fixture
def edge(demo_sim: Any, redis_proxy: FaultProxyThread, tmp_path: Path) -> Iterator[Edge]:
    settings = edge_settings(
        f"sqlite:///{tmp_path / 'ledger.db'}",
        list(demo_sim.urls),
        redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0",
    )
    with running_edge(settings) as running:
        yield running


def test_with_redis_unreachable_a_key_never_gets_more_than_its_limit(
    edge: Edge, redis_proxy: FaultProxyThread
) -> None:
    _, secret = edge.create_key(rpm=10)
    redis_proxy.refuse()
    statuses: list[int | str | None] = []
    client = edge.sdk(secret)
    for _ in range(20):
        try:
            client.chat.completions.create(model="demo", messages=MESSAGES, max_tokens=1)
            statuses.append(200)
        except openai.RateLimitError as refused:
            statuses.append(refused.code)
    # This edge's local share of the rpm: all of it when it is the only live limiter that
    # Redis counted, less when other processes share the limits.
    answered = statuses.count(200)
    assert answered <= 10
    # Every answer, then every refusal: the OpenAI 429 for requests per minute.
    assert statuses == [200] * answered + ["rate_limit_exceeded"] * (20 - answered)
    edge.server.runtime.log.flush()
    events = [msgspec.json.decode(line).get("event") for line in edge.server.log_lines()]
    assert events.count("limits_store_unreachable") == 1  # one line, not one per request
    health = edge.server.runtime.limiter.health()
    assert (health.store, health.degraded_admitted, health.degraded_refused) == (
        "unreachable",
        answered,
        20 - answered,
    )


def test_a_redis_blip_while_a_request_ends_leaves_its_slot_free_within_seconds(
    edge: Edge, redis_proxy: FaultProxyThread
) -> None:
    _, secret = edge.create_key(max_concurrency=1)

    async def hold_a_stream_through_a_blip() -> None:
        async with AsyncOpenAI(base_url=edge.base_url, api_key=secret, max_retries=0) as client:
            held = await client.chat.completions.create(
                model="demo", messages=MESSAGES, max_tokens=2000, stream=True
            )
            redis_proxy.refuse()
            await held.close()  # the request ends while Redis is out

    asyncio.run(hold_a_stream_through_a_blip())
    redis_proxy.restore()
    # A slot whose release was lost used to stay taken for 15 minutes. Now it is free on
    # this edge's local share at once, or once the edge's next probe finds Redis (about a
    # second): the SDK's retries, honouring Retry-After: 1, get through.
    with OpenAI(base_url=edge.base_url, api_key=secret, max_retries=5) as client:
        answer = client.chat.completions.create(model="demo", messages=MESSAGES, max_tokens=1)
    assert answer.choices[0].message.content is not None
