"""Limits held in this process: exact for one edge, no I/O on the request path.

A single process enforces every limit exactly. Workers of one edge without Redis cannot share
these counters, so each worker enforces its part of every limit (`shares.worker_share`): the
parts sum to the limit, so no key ever gets more than its limit across the workers, but a key
whose requests all reach one worker gets only that worker's part (a part may be 0).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec

from warmgate.proxy.keys.key import Key
from warmgate.proxy.limits.admission import Admission
from warmgate.proxy.limits.health import LimiterHealth
from warmgate.proxy.limits.policy import (
    Counters,
    WindowClock,
    has_limits,
    quota_period_bounds,
    ratelimit_headers,
    refusal_error,
    refusal_for,
    with_default_rpm,
)
from warmgate.proxy.limits.shares import worker_share

QuotaSeed = Callable[[float], Awaitable[dict[str, int]]]


class LocalLimiter:
    """`quota_seed(since)` (e.g. `Ledger.admitted_since`) gives each key's requests since a
    time: at start the current day's and month's counts come from it, so that a restart does
    not hand out a spent quota again. `default_rpm` is the rpm of keys without their own.
    `worker_count` workers of one edge each run one, `worker_index` telling which this is."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        quota_seed: QuotaSeed | None = None,
        default_rpm: int | None = None,
        worker_count: int = 1,
        worker_index: int = 0,
    ) -> None:
        self._clock = clock
        self._worker_count = max(1, worker_count)
        self._worker_index = worker_index
        self._parts: dict[str, tuple[Key, Key]] = {}  # key id -> (key, its worker's part)
        self._default_rpm = default_rpm
        self._quota_seed = quota_seed
        self._rpm: dict[str, tuple[int, int]] = {}  # key id -> (minute window, count)
        self._quota: dict[str, tuple[str, int]] = {}  # key id -> (period label, count)
        self._seeds: dict[str, tuple[str, dict[str, int]]] = {}  # period -> (label, counts)
        self._concurrent: dict[str, int] = {}
        self._windows = WindowClock()

    async def start(self) -> None:
        if self._quota_seed is None:
            return
        now = self._clock()
        for period in ("day", "month"):
            label, start, _ = quota_period_bounds(now, period)
            self._seeds[period] = (label, await self._quota_seed(start))

    async def close(self) -> None:
        return None

    def health(self) -> LimiterHealth:
        return LimiterHealth(store="none", processes=self._worker_count)

    def seed_quota(self, key: Key, used: int) -> None:
        """Start the key's current quota period at `used` (e.g. counted from the ledger)."""
        if key.quota_period is not None:
            label = self._windows.at(self._clock(), key.quota_period).quota_label
            assert label is not None
            self._quota[key.id] = (label, used)

    async def admit(self, key: Key, model: str) -> Admission:
        return self.admit_now(key, model)

    def admit_now(self, key: Key, model: str) -> Admission:
        """The synchronous core of `admit` (nothing here waits)."""
        key = with_default_rpm(key, self._default_rpm)
        if self._worker_count > 1:
            key = self._part(key)
        now = self._clock()
        windows = self._windows.at(now, key.quota_period)
        rpm_window, rpm_used = self._rpm.get(key.id, (windows.minute, 0))
        if rpm_window != windows.minute:
            rpm_used = 0
        label = windows.quota_label
        quota_used = 0
        if label is not None:
            quota_label, quota_used = self._quota.get(key.id) or self._seeded(key, label)
            if quota_label != label:
                quota_used = 0
        concurrent = self._concurrent.get(key.id, 0)
        counters = Counters(rpm_used=rpm_used, concurrent=concurrent, quota_used=quota_used)
        refusal = refusal_for(key, counters)
        if refusal is not None:
            raise refusal_error(refusal, key, windows, counters)
        if not has_limits(key):
            return Admission([])
        self._rpm[key.id] = (windows.minute, rpm_used + 1)
        if label is not None:
            self._quota[key.id] = (label, quota_used + 1)
        self._concurrent[key.id] = concurrent + 1
        after = Counters(rpm_used + 1, concurrent + 1, quota_used + 1)
        key_id = key.id
        return Admission(ratelimit_headers(key, windows, after), lambda: self._release(key_id))

    def _seeded(self, key: Key, label: str) -> tuple[str, int]:
        used = 0
        for seed_label, counts in self._seeds.values():
            if seed_label == label:
                used = counts.get(key.id, 0)
        if self._worker_count > 1 and key.quota is not None:
            # The ledger counts every worker's requests: this worker's part of what is left.
            whole = self._parts[key.id][0].quota or 0
            left = worker_share(
                max(0, whole - used), key.id, self._worker_index, self._worker_count
            )
            used = max(0, key.quota - left)
        return label, used

    def _part(self, key: Key) -> Key:
        """The key as this worker enforces it: its part of each limit."""
        known = self._parts.get(key.id)
        if known is not None and known[0] is key:
            return known[1]
        index, count = self._worker_index, self._worker_count
        part = msgspec.structs.replace(
            key,
            rpm=None if key.rpm is None else worker_share(key.rpm, key.id, index, count),
            max_concurrency=None
            if key.max_concurrency is None
            else worker_share(key.max_concurrency, key.id, index, count),
            quota=None if key.quota is None else worker_share(key.quota, key.id, index, count),
        )
        self._parts[key.id] = (key, part)
        return part

    def _release(self, key_id: str) -> None:
        left = self._concurrent.get(key_id, 0) - 1
        if left > 0:
            self._concurrent[key_id] = left
        else:
            self._concurrent.pop(key_id, None)

    def in_flight(self, key_id: str) -> int:
        return self._concurrent.get(key_id, 0)
