"""Limits shared by every edge through Redis: one Lua script checks and counts atomically.

Per key, in one hash slot (`{key id}`): a counter per minute window, a counter per quota period,
and a sorted set of in-flight leases scored by their expiry, so that slots held by an edge that
died come back after `lease_ttl_s` instead of leaking. The time comes from the caller's clock,
so every edge (and a test's fake clock) decides with the same windows as `policy`.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from warmgate.proxy.errors import RateLimited
from warmgate.proxy.keys.key import Key
from warmgate.proxy.limits.admission import Admission
from warmgate.proxy.limits.policy import (
    MINUTE_S,
    Counters,
    Refusal,
    WindowClock,
    Windows,
    has_limits,
    ratelimit_headers,
    refusal_error,
    with_default_rpm,
)

DEFAULT_LEASE_TTL_S = 900.0  # longer than any request: the upstream read timeout bounds one
KEY_PREFIX = "warmgate:limits"

_log = structlog.get_logger("warmgate.limits")

# KEYS: rpm counter, quota counter, lease set.
# ARGV: now, rpm, max_concurrency, quota (-1 = no limit), rpm_ttl_s, quota_ttl_s, lease id,
#       lease expiry, lease set ttl_s.
# Returns {refusal (0 none, 2 quota, 3 concurrency, 4 rpm), rpm used, in flight, quota used},
# the counts being those before the request when refused and after it when admitted.
_ADMIT = """
local now = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local conc = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local rpm_used = tonumber(redis.call('GET', KEYS[1]) or '0')
local quota_used = tonumber(redis.call('GET', KEYS[2]) or '0')
local in_flight = 0
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  in_flight = redis.call('ZCARD', KEYS[3])
end
if quota >= 0 and quota_used >= quota then return {2, rpm_used, in_flight, quota_used} end
if conc >= 0 and in_flight >= conc then return {3, rpm_used, in_flight, quota_used} end
if rpm >= 0 and rpm_used >= rpm then return {4, rpm_used, in_flight, quota_used} end
if rpm >= 0 then
  rpm_used = redis.call('INCR', KEYS[1])
  if rpm_used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
end
if quota >= 0 then
  quota_used = redis.call('INCR', KEYS[2])
  if quota_used == 1 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
end
if conc >= 0 then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[7])
  redis.call('EXPIRE', KEYS[3], ARGV[9])
  in_flight = in_flight + 1
end
return {0, rpm_used, in_flight, quota_used}
"""

_REFUSALS = {2: Refusal.QUOTA, 3: Refusal.CONCURRENCY, 4: Refusal.RPM}


class RedisLimiter:
    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        lease_ttl_s: float = DEFAULT_LEASE_TTL_S,
        prefix: str = KEY_PREFIX,
        fail_open: bool = True,
        default_rpm: int | None = None,
    ) -> None:
        self._url = url
        self._default_rpm = default_rpm
        self._clock = clock
        self._lease_ttl_s = lease_ttl_s
        self._prefix = prefix
        self._fail_open = fail_open
        self._redis: Any = None
        self._script: Any = None
        self._releases: set[asyncio.Task[None]] = set()
        self._windows = WindowClock()

    def __repr__(self) -> str:
        return "RedisLimiter()"  # the URL may carry a password

    async def start(self) -> None:
        self._redis = redis.Redis.from_url(self._url)
        self._script = self._redis.register_script(_ADMIT)
        try:
            await self._redis.ping()
        except (OSError, RedisError) as exc:
            if not self._fail_open:
                raise
            _log.warning("limits_store_unavailable", error=type(exc).__name__, fail_open=True)

    async def close(self) -> None:
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()

    def _keys(self, key: Key, windows: Windows) -> list[str]:
        base = f"{self._prefix}:{{{key.id}}}"
        period = windows.quota_label or "none"
        return [f"{base}:rpm:{windows.minute}", f"{base}:quota:{period}", f"{base}:leases"]

    async def admit(self, key: Key, model: str) -> Admission:
        key = with_default_rpm(key, self._default_rpm)
        now = self._clock()
        windows = self._windows.at(now, key.quota_period)
        if not has_limits(key):
            return Admission([])
        quota, quota_ttl = -1, 60
        if key.quota is not None and key.quota_period is not None:
            quota = key.quota
            quota_ttl = math.ceil(windows.quota_reset_s) + 60
        lease = secrets.token_hex(8)
        keys = self._keys(key, windows)
        try:
            result = await self._script(
                keys=keys,
                args=[
                    repr(now),
                    -1 if key.rpm is None else key.rpm,
                    -1 if key.max_concurrency is None else key.max_concurrency,
                    quota,
                    math.ceil(MINUTE_S) * 2,
                    quota_ttl,
                    lease,
                    repr(now + self._lease_ttl_s),
                    math.ceil(self._lease_ttl_s),
                ],
            )
        except (OSError, RedisError) as exc:
            return self._unavailable(exc)
        code, rpm_used, in_flight, quota_used = (int(v) for v in result)
        counters = Counters(rpm_used=rpm_used, concurrent=in_flight, quota_used=quota_used)
        if code:
            raise refusal_error(_REFUSALS[code], key, windows, counters)
        if key.max_concurrency is None:
            return Admission(ratelimit_headers(key, windows, counters))
        lease_set = keys[2]
        return Admission(
            ratelimit_headers(key, windows, counters), lambda: self._release(lease_set, lease)
        )

    def _unavailable(self, exc: BaseException) -> Admission:
        _log.warning(
            "limits_store_unavailable", error=type(exc).__name__, fail_open=self._fail_open
        )
        if not self._fail_open:
            raise RateLimited(
                "The rate limiter is unavailable. Please try again in 1s.",
                headers={"retry-after": "1"},
            )
        return Admission([])

    def _release(self, lease_set: str, lease: str) -> None:
        task = asyncio.get_running_loop().create_task(self._remove(lease_set, lease))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _remove(self, lease_set: str, lease: str) -> None:
        try:
            await self._redis.zrem(lease_set, lease)
        except Exception as exc:  # noqa: BLE001 the lease expires by itself after lease_ttl_s
            _log.warning("limits_release_failed", error=type(exc).__name__)

    async def settle(self) -> None:
        """Wait until every released slot has reached Redis (tests, shutdown)."""
        while self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
