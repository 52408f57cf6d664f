"""A client that goes away frees its slot at once (SGLang aborts the request on disconnect)."""

from __future__ import annotations

import anyio
import httpx
import pytest

from warmgate.backends.sim import SimCluster, SimConfig

pytestmark = pytest.mark.anyio

LONG = {
    "model": "demo",
    "messages": [{"role": "user", "content": "write forever"}],
    "max_tokens": 100_000,
    "ignore_eos": True,
}


@pytest.fixture
def sim_config() -> SimConfig:
    # Real time: a 100k-token answer takes minutes, so only the disconnect can end it.
    return SimConfig(model="demo", time_scale=1.0)


async def running(http: httpx.AsyncClient) -> int:
    loads = (await http.get("/v1/loads", params={"include": "core"})).json()
    count: int = loads["loads"][0]["num_running_reqs"]
    return count


async def test_closing_a_stream_drops_num_running_reqs_at_once(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    scheduler = cluster.replicas[0].scheduler
    async with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                break
        assert await running(http) == 1
    with anyio.fail_after(5):
        await scheduler.wait_until(lambda s: s.num_running == 0)
    assert await running(http) == 0
    stats = (await http.get("/_sim/stats")).json()
    assert stats["requests_aborted"] == 1
    assert stats["load"]["num_used_tokens"] == 0


async def test_a_non_streamed_request_is_aborted_when_its_client_leaves(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    scheduler = cluster.replicas[0].scheduler

    async def call() -> None:
        await http.post("/v1/chat/completions", json=LONG)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        with anyio.fail_after(5):
            await scheduler.wait_until(lambda s: s.num_running == 1)
        group.cancel_scope.cancel()
    with anyio.fail_after(5):
        await scheduler.wait_until(lambda s: s.num_running == 0)
    assert (await http.get("/_sim/stats")).json()["requests_aborted"] == 1


async def test_abort_request_by_rid_ends_a_stream_with_finish_reason_abort(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    body = {**LONG, "stream": True, "rid": "my-request-1"}
    async with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        lines = reply.aiter_lines()
        first = await anext(lines)
        assert first.startswith('data: {"id":"my-request-1"')
        aborted = await http.post("/abort_request", json={"rid": "my-request-1"})
        assert aborted.status_code == 200
        rest = [line async for line in lines if line]
    assert rest[-1] == "data: [DONE]"
    assert '"finish_reason":"abort"' in rest[-2]
    assert cluster.replicas[0].scheduler.num_running == 0


async def test_closing_the_cluster_ends_open_streams_with_abort_at_once() -> None:
    cluster = SimCluster(SimConfig(model="demo", time_scale=1.0))
    await cluster.start()
    lines: list[str] = []
    async with httpx.AsyncClient(base_url=cluster.urls[0], timeout=30.0) as client:

        async def read() -> None:
            body = {**LONG, "stream": True}
            async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
                lines.extend([line async for line in reply.aiter_lines() if line])

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            with anyio.fail_after(5):
                await cluster.replicas[0].scheduler.wait_until(lambda s: s.num_running == 1)
                await cluster.close()
    assert lines[-1] == "data: [DONE]"
    assert '"finish_reason":"abort"' in lines[-2]
