"""The Redis limiter against a real Redis, reached directly or through the fault proxy: limits
that hold across processes, waits for a free connection, local shares while Redis is out, slot
leases that a blip cannot strand. Time is a fake clock; background rounds are stepped by hand
(`maintain()`), so nothing here waits on a timer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from benchmarks.fault_proxy import FaultProxy
from tests.limits.conftest import REDIS_HOST, REDIS_PORT, no_background
from tests.support.clock import FakeClock
from tests.support.counters import counted
from warmgate.proxy.errors import GatewayError, QuotaExceeded, RateLimited
from warmgate.proxy.keys import Key
from warmgate.proxy.limits import Admission, RedisLimiter

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

WINDOW_START = 1_795_000_020.0  # the start of a minute window
DIRECT_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


class Events:
    """The limiter's log lines, as (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def event(self, name: str, **fields: object) -> None:
        self.lines.append(("info", name, fields))

    def warning(self, name: str, **fields: object) -> None:
        self.lines.append(("warning", name, fields))

    def names(self) -> list[str]:
        return [name for _, name, _ in self.lines]


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async with FaultProxy(REDIS_HOST, REDIS_PORT) as running:
        yield running


@pytest.fixture
async def processes(clock: FakeClock, prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """`await processes(n, url=..., **options)`: n limiter processes sharing `prefix`."""
    async with AsyncExitStack() as stack:

        async def make(count: int = 1, *, url: str = DIRECT_URL, **options: Any) -> Any:
            made = []
            for _ in range(count):
                limiter = RedisLimiter(
                    url, clock=clock, sleep=no_background, prefix=prefix, **options
                )
                await limiter.start()
                stack.push_async_callback(limiter.close)
                made.append(limiter)
            return made

        yield make


def new_key(**limits: Any) -> Key:
    return Key(id=f"key_{secrets.token_hex(4)}", name="k", **limits)


async def outcomes(limiter: RedisLimiter, key: Key, count: int) -> list[Admission | GatewayError]:
    """`count` admissions asked at once: each an Admission or the 429 it got."""

    async def one() -> Admission | GatewayError:
        try:
            return await limiter.admit(key, "demo")
        except GatewayError as refused:
            return refused

    return list(await asyncio.gather(*(one() for _ in range(count))))


def admitted(results: list[Admission | GatewayError]) -> list[Admission]:
    return [result for result in results if isinstance(result, Admission)]


async def test_three_processes_hammering_an_rpm_key_never_pass_its_limit_and_rarely_wait(
    processes: Callable[..., Any], clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    edges = await processes(3)
    for edge in edges:
        await edge.maintain()  # each counts the three live processes
    key = new_key(rpm=600)

    async def rounds(count: int) -> list[Admission | GatewayError]:
        """`count` rounds of 5 simultaneous requests on each process, each round followed by
        the exchanges it started: each process keeps 10 spares, and asks for more when it has
        used half of them, so it has them again before the next round."""
        results: list[Admission | GatewayError] = []
        for _ in range(count):
            for batch in await asyncio.gather(*(outcomes(edge, key, 5) for edge in edges)):
                results += batch
            for edge in edges:
                await edge.settle()
        return results

    first = await rounds(30)
    assert len(admitted(first)) == 450  # far from the limit: nothing refused
    # Only each process's first round waited for Redis; the rest came from units held.
    assert [edge.health().waits for edge in edges] == [5, 5, 5]
    rest = await rounds(30)
    assert 600 * 0.95 <= len(admitted(first + rest)) <= 600
    assert all(isinstance(r, RateLimited) for r in rest if not isinstance(r, Admission))


async def test_one_process_with_spares_still_stops_at_the_exact_limit(
    processes: Callable[..., Any], clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    (edge,) = await processes(1)
    key = new_key(rpm=1000)
    results = []
    for _ in range(120):
        results += await outcomes(edge, key, 10)
    assert len(admitted(results)) == 1000
    clock.advance(60)  # the next minute starts afresh
    assert len(admitted(await outcomes(edge, key, 10))) == 10


async def test_units_that_arrive_after_their_minute_ended_are_not_used_in_the_next(
    processes: Callable[..., Any], proxy: FaultProxy, clock: FakeClock
) -> None:
    clock.now = WINDOW_START + 59
    (edge,) = await processes(1, url=f"redis://127.0.0.1:{proxy.port}/0")
    key = new_key(rpm=2)
    await edge.admit(key, "demo")
    proxy.stall()
    late = asyncio.create_task(edge.admit(key, "demo"))  # asks Redis for this minute's unit
    await proxy.stalled()
    clock.advance(1)  # the minute ends while the answer is on its way
    proxy.resume()
    assert dict((await late).headers)["x-ratelimit-remaining-requests"] == "1"
    # It was decided in the new minute, with a unit of it: one is left there, not two.
    assert len(admitted(await outcomes(edge, key, 3))) == 1


async def test_a_full_connection_pool_makes_requests_wait_and_never_admits_unchecked(
    processes: Callable[..., Any], proxy: FaultProxy
) -> None:
    proxy.delay(to_server_s=0.005)  # every round trip holds the one connection a while
    (edge,) = await processes(
        1, url=f"redis://127.0.0.1:{proxy.port}/0", max_connections=1, store_timeout_s=30
    )
    keys = [new_key(quota=1, quota_period="day") for _ in range(30)]
    per_key = await asyncio.gather(*(outcomes(edge, key, 3) for key in keys))
    assert [len(admitted(results)) for results in per_key] == [1] * 30
    assert all(
        isinstance(r, QuotaExceeded)
        for results in per_key
        for r in results
        if not isinstance(r, Admission)
    )
    health = edge.health()
    assert (health.store, health.store_errors, health.degraded_admitted) == ("reachable", 0, 0)


async def test_unreachable_redis_leaves_each_process_its_local_share_never_open(
    processes: Callable[..., Any], proxy: FaultProxy, clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    await proxy.refuse()
    events = Events()
    (edge,) = await processes(
        1, url=f"redis://127.0.0.1:{proxy.port}/0", worker_count=2, events=events
    )
    key = new_key(rpm=10, max_concurrency=4, quota=100, quota_period="day")
    results = await outcomes(edge, key, 8)
    ok = admitted(results)
    # Two processes known (this edge's workers): half of each limit; concurrency binds first.
    assert len(ok) == 2
    assert all(isinstance(r, RateLimited) for r in results if not isinstance(r, Admission))
    for admission in ok:
        admission.release()
    again = admitted(await outcomes(edge, key, 8))
    assert len(again) == 2
    for admission in again:
        admission.release()
    assert len(admitted(await outcomes(edge, key, 8))) == 1  # rpm: 5 a minute, 4 used
    health = edge.health()
    assert health.store == "unreachable"
    assert (health.degraded_admitted, health.degraded_refused) == (5, 19)
    assert health.outages == 1
    assert events.names() == ["limits_store_unreachable"]  # one line, not one per request


async def test_requests_queued_behind_an_exchange_that_fails_are_decided_on_local_shares(
    processes: Callable[..., Any], proxy: FaultProxy, clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    (edge,) = await processes(1, url=f"redis://127.0.0.1:{proxy.port}/0")
    key = new_key(rpm=10)
    proxy.stall()
    first = asyncio.create_task(edge.admit(key, "demo"))  # its exchange is held
    await proxy.stalled()
    async with counted(edge._health, "waits", 4) as queued_behind:
        queued = [asyncio.create_task(edge.admit(key, "demo")) for _ in range(3)]
        async with asyncio.timeout(5):  # a bound, should they never queue
            await queued_behind.wait()  # all four wait behind the held exchange
    await proxy.refuse()  # the held exchange fails
    async with asyncio.timeout(5):  # a bound, should they be stranded
        results = await asyncio.gather(first, *queued)
    assert all(isinstance(result, Admission) for result in results)
    assert edge.health().degraded_admitted == 4


async def test_a_configured_local_share_replaces_the_count_of_processes(
    processes: Callable[..., Any], proxy: FaultProxy, clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    await proxy.refuse()
    (edge,) = await processes(1, url=f"redis://127.0.0.1:{proxy.port}/0", local_share=0.25)
    key = new_key(rpm=40)
    assert len(admitted(await outcomes(edge, key, 20))) == 10


async def test_after_an_outage_redis_is_used_again_and_learns_what_was_admitted(
    processes: Callable[..., Any], proxy: FaultProxy, clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    events = Events()
    cut_off, other = await processes(2, url=f"redis://127.0.0.1:{proxy.port}/0", events=events)
    (direct,) = await processes(1)
    for edge in (cut_off, other, direct):
        await edge.maintain()
    key = new_key(quota=30, quota_period="day")
    assert len(admitted(await outcomes(cut_off, key, 3))) == 3
    await proxy.refuse()
    # 27 were left when it last heard from Redis; a third of them is its local share.
    assert len(admitted(await outcomes(cut_off, key, 20))) == 9
    await proxy.restore()
    await cut_off.maintain()  # the probe: Redis answers, the degraded admissions are recorded
    await cut_off.settle()
    assert cut_off.health().store == "reachable"
    assert len(admitted(await outcomes(direct, key, 30))) == 30 - 12
    levels = [(level, name) for level, name, _ in events.lines if name.startswith("limits_")]
    assert levels == [("warning", "limits_store_unreachable"), ("info", "limits_store_reachable")]
    recovered = events.lines[-1][2]
    assert (recovered["degraded_admitted"], recovered["degraded_refused"]) == (9, 11)


async def test_a_window_lived_through_an_outage_stays_within_the_local_shares_after_it(
    processes: Callable[..., Any], proxy: FaultProxy, clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    edges = await processes(3, url=f"redis://127.0.0.1:{proxy.port}/0")
    for edge in edges:
        await edge.maintain()
    key = new_key(rpm=600)  # each process keeps up to 10 spares
    await proxy.refuse()
    assert [len(admitted(await outcomes(edge, key, 250))) for edge in edges] == [200] * 3
    await proxy.restore()
    first, *others = edges
    await first.maintain()  # back first: Redis knows its 200, not yet the others' 400
    await first.settle()
    assert first.health().store == "reachable"
    # Its share of this window is used: refused, without taking units it could not use yet.
    assert admitted(await outcomes(first, key, 5)) == []
    clock.advance(2)  # the others find Redis back and record theirs
    for edge in others:
        await edge.maintain()
        await edge.settle()
    await first.maintain()
    # Redis holds exactly the 600 admitted: no spares were taken while it could not know.
    assert [len(admitted(await outcomes(edge, key, 50))) for edge in edges] == [0, 0, 0]
    clock.advance(60)  # the next window is shared through Redis again
    total = sum([len(admitted(await outcomes(edge, key, 250))) for edge in edges])
    assert 600 * 0.95 <= total <= 600  # less only by the spares the first two still hold


async def test_a_redis_blip_during_a_release_does_not_hold_the_slot_for_long(
    processes: Callable[..., Any], proxy: FaultProxy, clock: FakeClock
) -> None:
    (edge,) = await processes(1, url=f"redis://127.0.0.1:{proxy.port}/0")
    (other,) = await processes(1)
    key = new_key(max_concurrency=1)
    admission = await edge.admit(key, "demo")
    await proxy.refuse()
    admission.release()  # giving the slot back fails: Redis is out
    await edge.settle()
    await proxy.restore()
    clock.advance(1)
    await edge.maintain()  # Redis answers again: the release is repeated until it lands
    await edge.settle()
    assert not (await other.admit(key, "demo")).released


async def test_a_slot_is_leased_for_seconds_renewed_while_its_request_lives_and_freed_after(
    processes: Callable[..., Any], clock: FakeClock
) -> None:
    holder, other = await processes(2, lease_ttl_s=6.0)
    key = new_key(max_concurrency=1)
    await holder.admit(key, "demo")
    for _ in range(10):  # 20 s of a long request: renewed every 2 s
        clock.advance(2)
        await holder.maintain()
        await holder.settle()
        with pytest.raises(RateLimited):
            await other.admit(key, "demo")
    # The holder's process dies: no more renewals; its slot lapses after the 6 s lease.
    clock.advance(6.5)
    assert not (await other.admit(key, "demo")).released


async def test_spares_of_an_idle_key_are_given_back_for_other_processes(
    processes: Callable[..., Any], clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    (first,) = await processes(1)  # alone: it keeps up to 5 % of the quota as spares
    key = new_key(quota=100, quota_period="day")
    await first.admit(key, "demo")
    (second,) = await processes(1)
    before = len(admitted(await outcomes(second, key, 99)))
    assert before < 99  # the first process still holds units it does not use
    clock.advance(5)  # idle for longer than a renewal interval
    await first.maintain()
    await first.settle()
    assert before + len(admitted(await outcomes(second, key, 99))) == 99


async def test_a_client_that_leaves_while_waiting_for_redis_strands_no_slot(
    processes: Callable[..., Any], proxy: FaultProxy
) -> None:
    proxy.delay(to_client_s=0.05)
    (edge,) = await processes(1, url=f"redis://127.0.0.1:{proxy.port}/0")
    (other,) = await processes(1)
    key = new_key(max_concurrency=1)
    async with counted(edge._health, "waits", 1) as started:
        waiting = asyncio.create_task(edge.admit(key, "demo"))
        async with asyncio.timeout(5):  # a bound, should it never wait
            await started.wait()  # it waits on the exchange it started
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await edge.settle()  # the exchange ends: the slot it brought stays with the edge
    proxy.delay()
    clock_unused = edge.health()
    assert clock_unused.waits == 1
    admission = await edge.admit(key, "demo")  # the same edge uses it without a new slot
    admission.release()
    await edge.settle()
    assert not (await other.admit(key, "demo")).released
