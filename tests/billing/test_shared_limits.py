"""Two `warmgate serve` processes sharing Redis enforce one combined limit per key."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.billing.edge import ADMIN_KEY
from tests.billing.toml_config import write_config
from tests.support.served import ServedGateway
from tests.support.stores import REDIS_URL

pytestmark = pytest.mark.redis

MESSAGES: Any = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def two_edges(tmp_path: Path, demo_sim: Any) -> Iterator[tuple[ServedGateway, ServedGateway, str]]:
    """Two processes, one Redis, one key (a fresh name, so Redis holds no old counts)."""
    secret = "wg-" + secrets.token_urlsafe(32)
    key = {
        "name": f"shared-{secrets.token_hex(6)}",
        "secret_env": "WG_SHARED_KEY",
        "quota": 6,
        "quota_period": "day",
        "max_concurrency": 1,
    }
    edges = []
    for name in ("a", "b"):
        config = write_config(
            tmp_path / f"{name}.toml",
            data_dir=tmp_path / name,
            ledger_url=f"sqlite:///{tmp_path / name / 'ledger.db'}",
            backend_urls=list(demo_sim.urls),
            keys=[key],
            redis_url=REDIS_URL,
        )
        edges.append(
            ServedGateway(config, environ={"WG_SHARED_KEY": secret, "WG_ADMIN_KEY": ADMIN_KEY})
        )
    try:
        yield edges[0], edges[1], secret
    finally:
        for edge in edges:
            edge.stop()


def test_two_processes_sharing_redis_enforce_one_quota_and_one_concurrency_limit(
    two_edges: tuple[ServedGateway, ServedGateway, str],
) -> None:
    a, b, secret = two_edges
    with (
        OpenAI(base_url=a.base_url, api_key=secret, max_retries=0) as on_a,
        OpenAI(base_url=b.base_url, api_key=secret, max_retries=0) as on_b,
    ):
        remaining = []
        for client in (on_a, on_b, on_a, on_b):
            raw = client.chat.completions.with_raw_response.create(
                model="demo", messages=MESSAGES, max_tokens=2
            )
            remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["5", "4", "3", "2"]  # one count across both edges

    async def concurrency() -> None:
        async with (
            AsyncOpenAI(base_url=a.base_url, api_key=secret, max_retries=0) as async_a,
            AsyncOpenAI(base_url=b.base_url, api_key=secret, max_retries=0) as async_b,
        ):
            held = await async_a.chat.completions.create(
                model="demo", messages=MESSAGES, max_tokens=2000, stream=True
            )
            with pytest.raises(openai.RateLimitError) as raised:  # the slot is held on edge a
                await async_b.chat.completions.create(model="demo", messages=MESSAGES)
            assert raised.value.code == "rate_limit_exceeded"
            await held.close()

    asyncio.run(concurrency())  # used 5 of 6: the held stream counted, the 429 did not

    with (
        OpenAI(base_url=a.base_url, api_key=secret, max_retries=0) as on_a,
        # Edge a frees the slot as soon as it sees the client leave; should this request get
        # there first, the SDK waits the 1 s Retry-After and tries again.
        OpenAI(base_url=b.base_url, api_key=secret, max_retries=3) as on_b,
    ):
        last = on_b.chat.completions.with_raw_response.create(
            model="demo", messages=MESSAGES, max_tokens=2
        )
        assert last.headers["x-ratelimit-remaining-requests"] == "0"
        for client in (on_a, on_b):  # no retry: the answer says x-should-retry: false
            with pytest.raises(openai.RateLimitError) as raised:
                client.chat.completions.create(model="demo", messages=MESSAGES)
            assert raised.value.code == "insufficient_quota"
