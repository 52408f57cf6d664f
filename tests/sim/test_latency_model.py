"""The latency model, read on the simulator's own clock (simulated seconds) at time_scale 0.

Every timing here is a pure function of the model's knobs and the requests, so the assertions
are exact; nothing sleeps and nothing depends on how busy the test machine is.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.backends.sim.scheduler import Scheduler

pytestmark = pytest.mark.anyio

CONFIG = SimConfig(
    model="demo",
    time_scale=0.0,
    enable_cache_report=True,
    prefill_tokens_per_s=10_000.0,
    prefill_overhead_s=0.02,
    itl_base_s=0.01,
    itl_per_running_req_s=0.001,
    chunked_prefill_size=8192,
)


@pytest.fixture
def sim_config() -> SimConfig:
    return CONFIG


def words(count: int, salt: str = "") -> str:
    """`count` tokens for the simulator's tokenizer: one word each (leading space included)."""
    return salt + " apple" * count


async def chat(http: httpx.AsyncClient, content: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "demo", "messages": [{"role": "user", "content": content}], **extra}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def record_of(http: httpx.AsyncClient, rid: str) -> dict[str, Any]:
    stats = (await http.get("/_sim/stats")).json()
    return next(r for r in stats["recent_requests"] if r["rid"] == rid)


async def test_ttft_grows_linearly_with_uncached_prompt_length(http: httpx.AsyncClient) -> None:
    points = []
    for count in (500, 2000, 6000):
        await http.post("/flush_cache")
        reply = await chat(http, words(count), max_tokens=1)
        record = await record_of(http, reply["id"])
        assert record["cached_tokens"] == 0
        points.append((record["prompt_tokens"], record["ttft_s"]))
    for tokens, ttft in points:
        assert ttft == pytest.approx(0.02 + tokens / 10_000.0)
    (t1, y1), (t2, y2) = points[0], points[-1]
    assert (y2 - y1) / (t2 - t1) == pytest.approx(1 / 10_000.0)


async def test_a_prompt_longer_than_a_chunk_pays_one_overhead_per_chunk(
    http: httpx.AsyncClient,
) -> None:
    reply = await chat(http, words(9000), max_tokens=1)
    record = await record_of(http, reply["id"])
    assert record["prompt_tokens"] > 8192
    assert record["ttft_s"] == pytest.approx(2 * 0.02 + record["prompt_tokens"] / 10_000.0)


async def test_a_repeated_long_prefix_is_cached_and_answers_much_sooner(
    http: httpx.AsyncClient,
) -> None:
    system = {"role": "system", "content": words(6000)}
    first = await chat_messages(http, [system, {"role": "user", "content": "first question"}])
    second = await chat_messages(http, [system, {"role": "user", "content": "another one"}])
    cold, warm = await record_of(http, first["id"]), await record_of(http, second["id"])
    assert cold["cached_tokens"] == 0
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == warm["cached_tokens"]
    assert warm["cached_tokens"] >= 6000 - 16
    assert warm["ttft_s"] < cold["ttft_s"] / 10
    uncached = warm["prompt_tokens"] - warm["cached_tokens"]
    assert warm["ttft_s"] == pytest.approx(0.02 + uncached / 10_000.0)
    load = (await http.get("/v1/loads")).json()["loads"][0]
    total = cold["prompt_tokens"] + warm["prompt_tokens"]
    assert load["cache_hit_rate"] == pytest.approx(warm["cached_tokens"] / total, abs=1e-4)


async def chat_messages(http: httpx.AsyncClient, messages: list[dict[str, str]]) -> dict[str, Any]:
    body = {"model": "demo", "messages": messages, "max_tokens": 1}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def run_batch(cluster: SimCluster, http: httpx.AsyncClient, size: int) -> list[str]:
    """Queue `size` requests behind a paused scheduler, release them together, return rids."""
    scheduler = cluster.replicas[0].scheduler
    await http.post("/pause_generation")
    rids: list[str] = []

    async def one(index: int) -> None:
        reply = await chat(http, f"question {index}", max_tokens=10, ignore_eos=True)
        rids.append(reply["id"])

    async with anyio.create_task_group() as group:
        for index in range(size):
            group.start_soon(one, index)
        with anyio.fail_after(10):
            await scheduler.wait_until(lambda s: s.num_waiting == size)
        await http.post("/continue_generation")
    return rids


async def test_inter_token_latency_grows_with_the_running_batch(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    alone = await record_of(http, (await run_batch(cluster, http, 1))[0])
    crowd = [await record_of(http, rid) for rid in await run_batch(cluster, http, 32)]
    assert alone["itl_s"] == pytest.approx(0.01 + 0.001 * 1)
    assert [r["itl_s"] for r in crowd] == pytest.approx([0.01 + 0.001 * 32] * 32)
    assert all(r["completion_tokens"] == 10 for r in crowd)


class TestQueueLimit:
    @pytest.fixture
    def sim_config(self) -> SimConfig:
        return SimConfig(model="demo", time_scale=0.0, max_queued_requests=2)

    async def test_a_full_waiting_queue_answers_503_and_streams_get_an_in_band_error(
        self, cluster: SimCluster, http: httpx.AsyncClient
    ) -> None:
        scheduler: Scheduler = cluster.replicas[0].scheduler
        await http.post("/pause_generation")
        body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

        async def queued() -> None:
            await http.post("/v1/chat/completions", json=body)

        async with anyio.create_task_group() as group:
            for _ in range(2):
                group.start_soon(queued)
            with anyio.fail_after(10):
                await scheduler.wait_until(lambda s: s.num_waiting == 2)
            rejected = await http.post("/v1/chat/completions", json=body)
            streamed = await http.post("/v1/chat/completions", json={**body, "stream": True})
            await http.post("/continue_generation")
        assert rejected.status_code == 503
        assert rejected.content == (
            b'{"object":"error","message":"The request queue is full.",'
            b'"type":"503","param":null,"code":503}'
        )
        assert streamed.status_code == 200
        assert streamed.content == (
            b'data: {"error":{"object":"error","message":"The request queue is full.",'
            b'"type":"SERVICE_UNAVAILABLE","param":null,"code":503}}\n\ndata: [DONE]\n\n'
        )
        stats = (await http.get("/_sim/stats")).json()
        assert stats["requests_rejected_queue_full"] == 2
