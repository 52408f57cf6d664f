"""Limits: the pure rules, the in-process limiter and the Redis limiter, at their boundaries."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.billing.test_ledger import make_row
from tests.limits.conftest import no_background
from tests.support.clock import FakeClock
from tests.support.stores import REDIS_URL
from warmgate.proxy.errors import GatewayError, QuotaExceeded, RateLimited
from warmgate.proxy.keys import Key
from warmgate.proxy.ledger import open_ledger
from warmgate.proxy.limits import Admission, Limiter, LocalLimiter, go_duration
from warmgate.proxy.limits.policy import (
    Counters,
    Refusal,
    minute_window,
    quota_window,
    refusal_for,
)
from warmgate.proxy.limits.redis_limiter import DEFAULT_LEASE_TTL_S, RedisLimiter

# 1_795_000_000 is 20 s into a minute window: move to the start of the next one.
WINDOW_START = 1_795_000_020.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.02, "20ms"), (1, "1s"), (360, "6m0s"), (179.56, "2m59.56s"), (3723, "1h2m3s")],
)
def test_reset_durations_use_openais_go_format(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_the_rules_pick_the_first_limit_broken() -> None:
    key = Key(
        id="k",
        name="k",
        rpm=2,
        max_concurrency=1,
        quota=5,
        quota_period="day",
    )
    assert refusal_for(key, Counters()) is None
    assert refusal_for(key, Counters(quota_used=5)) is Refusal.QUOTA
    assert refusal_for(key, Counters(concurrent=1)) is Refusal.CONCURRENCY
    assert refusal_for(key, Counters(rpm_used=2)) is Refusal.RPM


def test_windows_are_aligned_to_the_utc_clock() -> None:
    assert minute_window(WINDOW_START) == (WINDOW_START // 60, 60.0)
    label, reset_s = quota_window(1_795_000_000.0, "day")  # 2026-11-18 11:06:40 UTC
    assert label == "2026-11-18"
    assert reset_s == pytest.approx(12 * 3600 + 53 * 60 + 20)
    label, _ = quota_window(1_795_000_000.0, "month")
    assert label == "2026-11"
    assert quota_window(1_798_761_599.0, "month")[1] == pytest.approx(1.0)  # 2026-12-31 23:59:59


def _headers(source: Admission | GatewayError) -> dict[str, str]:
    return dict(source.headers)


Pair = tuple[LocalLimiter, LocalLimiter] | tuple[RedisLimiter, RedisLimiter]


@asynccontextmanager
async def limiter_pair(
    kind: str, clock: FakeClock, *, default_rpm: int | None = None
) -> AsyncIterator[Pair]:
    """Two limiters sharing state: one in-process limiter twice, or two Redis clients."""
    if kind == "local":
        local = LocalLimiter(clock=clock, default_rpm=default_rpm)
        yield local, local
        return
    prefix = f"warmgate:test:{secrets.token_hex(6)}"
    first, second = (
        RedisLimiter(
            REDIS_URL, clock=clock, prefix=prefix, default_rpm=default_rpm, sleep=no_background
        )
        for _ in range(2)
    )
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def limiters(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Pair]:
    async with limiter_pair(request.param, clock) as pair:
        yield pair


@pytest.mark.anyio
async def test_n_requests_per_minute_pass_and_the_next_gets_429_with_headers(
    limiters: Pair, clock: FakeClock
) -> None:
    clock.now = WINDOW_START + 15
    key = Key(id=f"key_{secrets.token_hex(4)}", name="k", rpm=3)
    admissions = [await limiters[0].admit(key, "demo") for _ in range(3)]
    assert [_headers(a)["x-ratelimit-remaining-requests"] for a in admissions] == ["2", "1", "0"]
    assert _headers(admissions[0]) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "45s",
    }
    with pytest.raises(RateLimited) as raised:
        await limiters[1].admit(key, "demo")
    error = raised.value
    assert (error.status, error.type, error.instance_code) == (
        429,
        "requests",
        "rate_limit_exceeded",
    )
    assert error.headers["retry-after"] == "45"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"] == "45s"
    clock.advance(45)  # the next window
    assert _headers(await limiters[1].admit(key, "demo"))["x-ratelimit-remaining-requests"] == "2"


@pytest.mark.anyio
async def test_two_limiters_sharing_state_enforce_one_combined_limit(
    limiters: Pair, clock: FakeClock
) -> None:
    clock.now = WINDOW_START
    first, second = limiters
    key = Key(id=f"key_{secrets.token_hex(4)}", name="k", rpm=10)
    for i in range(10):
        await (first if i % 2 else second).admit(key, "demo")
    for limiter in (first, second):
        with pytest.raises(RateLimited):
            await limiter.admit(key, "demo")


@pytest.mark.anyio
async def test_concurrency_slots_come_back_on_release_exactly_once(limiters: Pair) -> None:
    key = Key(id=f"key_{secrets.token_hex(4)}", name="k", max_concurrency=2)
    a, b = limiters
    first = await a.admit(key, "demo")
    await b.admit(key, "demo")
    with pytest.raises(RateLimited) as raised:
        await a.admit(key, "demo")
    assert raised.value.headers["retry-after"] == "1"
    first.release()
    first.release()  # idempotent: frees one slot, not two
    if isinstance(a, RedisLimiter):
        await a.settle()
    third = await b.admit(key, "demo")
    with pytest.raises(RateLimited):
        await a.admit(key, "demo")
    assert not third.released


@pytest.mark.anyio
async def test_a_spent_quota_answers_insufficient_quota_until_the_period_ends(
    limiters: Pair, clock: FakeClock
) -> None:
    key = Key(id=f"key_{secrets.token_hex(4)}", name="k", quota=2, quota_period="day")
    limiter = limiters[0]
    admitted = [await limiter.admit(key, "demo") for _ in range(2)]
    assert _headers(admitted[1])["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(QuotaExceeded) as raised:
        await limiter.admit(key, "demo")
    error = raised.value
    assert (error.status, error.type, error.instance_code) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert error.headers["retry-after"] == "60"  # capped: the day ends in hours
    assert error.headers["x-should-retry"] == "false"
    clock.advance(quota_window(clock.now, "day")[1])
    await limiter.admit(key, "demo")


@pytest.mark.anyio
async def test_a_key_without_limits_gets_no_ratelimit_headers_when_no_default_rpm_is_set(
    clock: FakeClock,
) -> None:
    for default_rpm in (None, 0):
        limiter = LocalLimiter(clock=clock, default_rpm=default_rpm)
        assert (await limiter.admit(Key(id="k", name="k"), "demo")).headers == []


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def defaulted(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Limiter]:
    """A limiter whose keys without an rpm or quota of their own get 3 requests a minute."""
    async with limiter_pair(request.param, clock, default_rpm=3) as (limiter, _):
        yield limiter


@pytest.mark.anyio
async def test_a_key_without_rpm_or_quota_is_held_to_the_default_rpm_with_headers(
    defaulted: Limiter, clock: FakeClock
) -> None:
    clock.now = WINDOW_START + 15
    plain = Key(id=f"key_{secrets.token_hex(4)}", name="plain")
    admissions = [await defaulted.admit(plain, "demo") for _ in range(3)]
    assert _headers(admissions[0]) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "45s",
    }
    assert _headers(admissions[2])["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(RateLimited) as raised:
        await defaulted.admit(plain, "demo")
    assert raised.value.headers["retry-after"] == "45"
    own = Key(id=f"key_{secrets.token_hex(4)}", name="own", rpm=5)  # its own rpm wins
    assert _headers(await defaulted.admit(own, "demo"))["x-ratelimit-limit-requests"] == "5"
    quota = Key(id=f"key_{secrets.token_hex(4)}", name="q", quota=7, quota_period="day")
    assert _headers(await defaulted.admit(quota, "demo"))["x-ratelimit-limit-requests"] == "7"


@pytest.mark.anyio
async def test_a_restarted_local_limiter_resumes_quotas_from_the_ledger(
    store_url: str, clock: FakeClock
) -> None:
    key = Key(id="key_q", name="q", quota=3, quota_period="day")
    async with open_ledger(store_url) as ledger:
        ledger.record(make_row("r1", key_id="key_q", started_at=clock.now - 60))
        ledger.record(
            make_row(
                "r2",
                key_id="key_q",
                started_at=clock.now - 30,
                billed=False,
                billed_reason="backend_error",
                status=502,
            )
        )
        ledger.record(
            make_row(
                "r3",
                key_id="key_q",
                started_at=clock.now - 20,
                status=429,
                billed=False,
                billed_reason="client_error",
            )
        )  # refused: not counted
        ledger.record(make_row("r4", key_id="key_q", started_at=clock.now - 2 * 86_400))
        limiter = LocalLimiter(clock=clock, quota_seed=ledger.admitted_since)
        await limiter.start()
    admission = await limiter.admit(key, "demo")
    assert dict(admission.headers)["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(QuotaExceeded):
        await limiter.admit(key, "demo")


@pytest.mark.anyio
@pytest.mark.redis
async def test_a_slot_held_by_an_edge_that_died_comes_back_after_the_lease(
    clock: FakeClock,
) -> None:
    prefix = f"warmgate:test:{secrets.token_hex(6)}"
    dead = RedisLimiter(REDIS_URL, clock=clock, prefix=prefix, sleep=no_background)
    alive = RedisLimiter(REDIS_URL, clock=clock, prefix=prefix, sleep=no_background)
    await dead.start()
    await alive.start()
    try:
        key = Key(id=f"key_{secrets.token_hex(4)}", name="k", max_concurrency=1)
        await dead.admit(key, "demo")  # never released, never renewed: its edge is gone
        with pytest.raises(RateLimited):
            await alive.admit(key, "demo")
        clock.advance(DEFAULT_LEASE_TTL_S + 1)  # seconds, not the request's whole life
        admission = await alive.admit(key, "demo")
        assert not admission.released
    finally:
        await dead.close()
        await alive.close()
