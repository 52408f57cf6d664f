"""The scheduler and the prefix cache on their own, with an injected clock and sleep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
import pytest

from warmgate.backends.sim.config import SimConfig
from warmgate.backends.sim.generation import Generation
from warmgate.backends.sim.prefix_cache import PrefixCache
from warmgate.backends.sim.scheduler import Scheduler
from warmgate.backends.sim.telemetry import Telemetry


class FakeClock:
    """Monotonic time that moves only when the scheduler sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


CONFIG = SimConfig(
    model="demo",
    time_scale=1.0,
    kv_tokens=100,
    max_running_requests=8,
    chunked_prefill_size=64,
    prefill_tokens_per_s=1000.0,
    prefill_overhead_s=0.01,
    itl_base_s=0.02,
    itl_per_running_req_s=0.005,
)


@pytest.fixture
async def engine() -> AsyncIterator[tuple[Scheduler, FakeClock]]:
    clock = FakeClock()
    scheduler = Scheduler(CONFIG, PrefixCache(16), Telemetry(), clock.monotonic, clock.sleep)
    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        yield scheduler, clock
        group.cancel_scope.cancel()


def request(rid: str, prompt: int, output: int, hashes: list[int] | None = None) -> Generation:
    return Generation(
        rid,
        prompt_tokens=prompt,
        block_hashes=hashes or [],
        output_tokens=output,
        stop_reason="length",
    )


@pytest.mark.anyio
async def test_a_request_that_does_not_fit_in_kv_waits_for_the_running_one(
    engine: tuple[Scheduler, FakeClock],
) -> None:
    scheduler, _ = engine
    first, second = request("a", 50, 10), request("b", 50, 10)
    scheduler.submit(first)
    scheduler.submit(second)
    with anyio.fail_after(5):
        await scheduler.wait_until(lambda s: s.num_running == 1)
        assert scheduler.num_waiting == 1
        assert scheduler.used_tokens == 60
        await second.completed()
    assert second.admitted_at >= first.finished_at
    assert scheduler.used_tokens == 0


@pytest.mark.anyio
async def test_a_long_prompt_is_prefilled_in_chunks(engine: tuple[Scheduler, FakeClock]) -> None:
    scheduler, clock = engine
    long = request("long", 90, 1)
    scheduler.submit(long)
    with anyio.fail_after(5):
        await long.completed()
    assert clock.sleeps == pytest.approx([0.01 + 64 / 1000, 0.01 + 26 / 1000])
    assert long.ttft_s == pytest.approx(sum(clock.sleeps))


@pytest.mark.anyio
async def test_decode_steps_cost_more_with_more_running_requests(
    engine: tuple[Scheduler, FakeClock],
) -> None:
    scheduler, clock = engine
    batch = [request(f"r{i}", 4, 5) for i in range(3)]
    for generation in batch:
        scheduler.submit(generation)
    with anyio.fail_after(5):
        for generation in batch:
            await generation.completed()
    prefill, *decodes = clock.sleeps
    assert prefill == pytest.approx(0.01 + 12 / 1000)
    assert decodes == pytest.approx([0.02 + 0.005 * 3] * 4)
    assert all(g.mean_itl_s == pytest.approx(0.035) for g in batch)


@pytest.mark.anyio
async def test_an_abort_frees_the_slot_and_its_kv_at_once(
    engine: tuple[Scheduler, FakeClock],
) -> None:
    scheduler, _ = engine
    endless = request("x", 10, 80)
    scheduler.submit(endless)
    with anyio.fail_after(5):
        await scheduler.wait_until(lambda s: endless.generated >= 2)
    assert scheduler.abort(endless)
    assert (scheduler.num_running, scheduler.used_tokens) == (0, 0)
    assert endless.finish_reason == "abort"
    assert not scheduler.abort(endless)


def test_the_prefix_cache_matches_whole_blocks_and_evicts_least_recently_used() -> None:
    cache = PrefixCache(page_size=16)
    cache.insert([1, 2, 3])
    cache.insert([7, 8])
    assert cache.match([1, 2, 9]) == 32
    assert cache.match([7, 8]) == 32
    cache.evict(capacity_tokens=4 * 16)  # one block must go: the least recently used leaf
    assert cache.match([1, 2, 3]) == 32
    assert cache.match([7, 8]) == 32
    cache.evict(capacity_tokens=2 * 16)
    assert cache.match([7, 8]) == 32  # touched last, so kept
    assert cache.match([1]) == 0
    cache.clear()
    assert cache.tokens == 0


def test_a_repeated_prefix_evicted_by_kv_pressure_is_no_longer_cached() -> None:
    clock = FakeClock()
    scheduler = Scheduler(CONFIG, PrefixCache(16), Telemetry(), clock.monotonic, clock.sleep)

    async def scenario() -> tuple[int, int]:
        async with anyio.create_task_group() as group:
            group.start_soon(scheduler.run)
            for rid, hashes in (("a", [1, 2, 3]), ("b", [4, 5, 6]), ("a2", [1, 2, 3])):
                generation = request(rid, 48, 1, hashes)
                scheduler.submit(generation)
                await generation.completed()
                if rid == "b":
                    held = request("held", 60, 40)  # 100 KV tokens: the cache must shrink
                    scheduler.submit(held)
                    await held.completed()
            group.cancel_scope.cancel()
        return generation.cached_tokens, scheduler.cache.tokens

    cached, _ = anyio.run(scenario)
    assert cached == 0
