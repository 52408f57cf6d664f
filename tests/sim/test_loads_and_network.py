"""/v1/loads' decode_moments, and the per-replica network delay (first byte and each chunk)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.sim import sglang_wheel
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.backends.sim.network import Outlet, first_byte_delay

pytestmark = pytest.mark.anyio


async def test_decode_moments_are_null_until_a_decode_step_then_sums(
    http: httpx.AsyncClient,
) -> None:
    snapshot = sglang_wheel.load_snapshot()
    core = [f for f in snapshot.LoadSnapshot.__struct_fields__ if f not in snapshot._SECTION_FIELDS]
    before = (await http.get("/v1/loads")).json()["loads"][0]
    assert list(before)[: len(core)] == core  # SGLang's LoadSnapshot core keys, in its order
    assert before["decode_moments"] is None
    body = {"model": "demo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5,
            "ignore_eos": True}  # fmt: skip
    await http.post("/v1/chat/completions", json=body)
    moments = (await http.get("/v1/loads")).json()["loads"][0]["decode_moments"]
    steps, batch, step_us, batch_squared, batch_step_us, generated = moments
    assert steps == 4  # five tokens: one from the prefill pass, four decode steps
    assert (batch, batch_squared, generated) == (4, 4, 4)
    assert step_us > 0
    assert batch_step_us == step_us
    assert (await http.get("/v1/loads")).json()["loads"][0]["total_prefill_busy_us"] > 0


class Clock:
    """A fake monotonic clock; `sleep` records each wait and moves the clock by it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self.woke: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds
        self.woke.append(round(self.now, 6))
        await asyncio.sleep(0)


@pytest.fixture
async def served_app() -> AsyncIterator[tuple[str, Clock, list[str]]]:
    clock = Clock()
    trace: list[str] = []

    async def streamed(request: web.Request) -> web.StreamResponse:
        outlet = Outlet(request, web.StreamResponse(), 0.5, clock.monotonic, clock.sleep)
        try:
            await outlet.prepare()
            for number in range(3):
                await outlet.write(b"chunk %d\n" % number)
                trace.append(f"wrote {number} at {clock.now:.1f}")
                clock.now += 0.1  # the next token is sampled 100 ms later
            await outlet.drain()
        finally:
            await outlet.close()
        return outlet.response

    async def whole(request: web.Request) -> web.Response:
        del request
        return web.Response(text="done")

    app = web.Application(middlewares=[first_byte_delay(0.25, clock.sleep)])
    app.router.add_get("/stream", streamed)
    app.router.add_get("/whole", whole)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # a TCP server
    try:
        yield f"http://127.0.0.1:{port}", clock, trace
    finally:
        await runner.cleanup()


async def test_a_delayed_stream_releases_each_chunk_its_delay_after_it_was_written(
    served_app: tuple[str, Clock, list[str]],
) -> None:
    url, clock, trace = served_app
    async with httpx.AsyncClient(base_url=url) as client:
        reply = await client.get("/stream")
    assert reply.text == "chunk 0\nchunk 1\nchunk 2\n"
    # The writer was never held: all three were written before the first was released.
    assert trace == ["wrote 0 at 0.0", "wrote 1 at 0.1", "wrote 2 at 0.2"]
    # Headers and chunk 0 go out at 0.5, chunk 1 at 0.6, chunk 2 at 0.7: latency, not gaps.
    assert clock.woke == [0.5, 0.6, 0.7]


async def test_a_whole_answer_waits_the_delay_before_its_first_byte(
    served_app: tuple[str, Clock, list[str]],
) -> None:
    url, clock, _ = served_app
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/whole")).text == "done"
    assert clock.waits == [0.25]


async def test_one_cluster_can_stand_for_two_regions() -> None:
    config = SimConfig(model="demo", time_scale=0.001, network_delay_ms=5.0)
    near_far = SimCluster(config, replicas=2, network_delay_ms=[0.0, 80.0])
    assert [r.config.network_delay_ms for r in near_far.replicas] == [0.0, 80.0]
    assert [r.network_delay_s for r in near_far.replicas] == [0.0, 80.0 / 1000 * 0.001]
    same = SimCluster(config, replicas=2)
    assert [r.config.network_delay_ms for r in same.replicas] == [5.0, 5.0]
    async with near_far:
        body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                "stream": True}  # fmt: skip
        for url in near_far.urls:
            async with httpx.AsyncClient(base_url=url) as client:
                reply = await client.post("/v1/chat/completions", json=body)
                assert reply.text.endswith("data: [DONE]\n\n")
                assert (await client.get("/health")).status_code == 200


def test_network_delays_must_fit_the_cluster() -> None:
    config = SimConfig(model="demo")
    with pytest.raises(ValueError, match="one value per replica"):
        SimCluster(config, replicas=2, network_delay_ms=[1.0])
    with pytest.raises(ValueError, match=">= 0"):
        SimCluster(config, replicas=1, network_delay_ms=[-1.0])


def test_the_cli_takes_a_network_delay() -> None:
    from warmgate.backends.sim.cli import build_parser, config_from  # noqa: PLC0415

    args: Any = build_parser().parse_args(["--network-delay-ms", "35"])
    assert config_from(args).network_delay_ms == 35.0
