"""How limits are divided among processes: pure arithmetic, and workers without Redis."""

from __future__ import annotations

import secrets

import pytest

from tests.support.clock import FakeClock
from warmgate.proxy.errors import GatewayError, QuotaExceeded
from warmgate.proxy.keys import Key
from warmgate.proxy.limits import LocalLimiter
from warmgate.proxy.limits.shares import degraded_cap, spare_cap, worker_share

WINDOW_START = 1_795_000_020.0


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("limit", [0, 1, 2, 5, 10, 99, 600])
def test_the_workers_parts_of_a_limit_sum_to_the_limit(limit: int, workers: int) -> None:
    for _ in range(20):
        key_id = f"key_{secrets.token_hex(4)}"
        parts = [worker_share(limit, key_id, index, workers) for index in range(workers)]
        assert sum(parts) == limit
        assert max(parts) - min(parts) <= 1


def test_the_remainders_of_different_keys_land_on_different_workers() -> None:
    holders = {
        next(i for i in range(2) if worker_share(1, f"key_{n}", i, 2) == 1) for n in range(50)
    }
    assert holders == {0, 1}


def test_spares_are_at_most_five_percent_of_a_limit_over_all_processes() -> None:
    assert spare_cap(600, 3) == 10
    assert spare_cap(6000, 1) == 300
    assert spare_cap(19, 1) == 0  # small limits: every grant is asked for when needed
    assert spare_cap(40, 3) == 0
    for limit in range(0, 2000, 37):
        for processes in (1, 2, 3, 8):
            assert spare_cap(limit, processes) * processes <= limit * 0.05


def test_a_process_cut_off_keeps_its_units_and_its_share_of_what_was_left() -> None:
    assert degraded_cap(600, mine=0, total=0, local_share=1 / 3) == 200  # a window never seen
    assert degraded_cap(600, mine=20, total=300, local_share=1 / 3) == 120
    assert degraded_cap(600, mine=20, total=650, local_share=1 / 3) == 20  # nothing left
    assert degraded_cap(10, mine=0, total=0, local_share=0.25) == 2


def admitted(limiter: LocalLimiter, key: Key, count: int) -> int:
    answered = 0
    for _ in range(count):
        try:
            limiter.admit_now(key, "demo")
            answered += 1
        except GatewayError:
            pass
    return answered


def test_two_workers_without_redis_give_an_rpm_10_key_at_most_10_answers() -> None:
    clock = FakeClock(WINDOW_START)
    workers = [LocalLimiter(clock=clock, worker_count=2, worker_index=index) for index in range(2)]
    key = Key(id="key_rpm10", name="k", rpm=10)
    assert sum(admitted(worker, key, 20) for worker in workers) == 10
    clock.advance(60)
    assert sum(admitted(worker, key, 20) for worker in workers) == 10


def test_a_worker_shows_its_own_part_of_the_limit_in_the_headers() -> None:
    clock = FakeClock(WINDOW_START)
    key = Key(id="key_rpm10", name="k", rpm=11)
    parts = []
    for index in range(2):
        admission = LocalLimiter(clock=clock, worker_count=2, worker_index=index).admit_now(
            key, "demo"
        )
        parts.append(int(dict(admission.headers)["x-ratelimit-limit-requests"]))
    assert sorted(parts) == [5, 6]


@pytest.mark.anyio
async def test_restarted_workers_split_what_is_left_of_a_quota_the_ledger_counted() -> None:
    clock = FakeClock(WINDOW_START)
    key = Key(id="key_quota", name="q", quota=20, quota_period="day")

    async def seed(_: float) -> dict[str, int]:
        return {"key_quota": 13}  # both workers' requests before the restart

    workers = []
    for index in range(3):
        worker = LocalLimiter(clock=clock, quota_seed=seed, worker_count=3, worker_index=index)
        await worker.start()
        workers.append(worker)
    assert sum(admitted(worker, key, 10) for worker in workers) == 7
    with pytest.raises(QuotaExceeded):
        workers[0].admit_now(key, "demo")
