"""Redis as the record of what every limiter process was granted, and the registry of those
processes. Every failure of Redis (refused, timed out, no pooled connection free in time, a
broken reply) becomes `StoreUnavailableError` here and nowhere else.

Per key, in one hash slot (`{key id}`), so that one script sees all of a key's limits:
- `rpm:<minute>` and `quota:<period>`: hashes of units granted, one field per process and `#`
  for their sum; they expire after their window.
- `slots`: a hash of concurrency slots held, one field per process, with `slots:expiry`, a
  sorted set of when each process's holding lapses unless renewed. A process renews every
  holding it has a few times per lease, so a process that died frees its slots within one
  lease (seconds), and one that lives keeps them however long its requests run.
Every exchange states what the process wants recorded (not a difference), so repeating one
after an error is harmless.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from warmgate.proxy.limits.grants import Planned, TallyAnswer
from warmgate.proxy.limits.policy import MINUTE_S, Windows

# Per tally (quota, slots, rpm): ARGV limit (-1: none), base, floor, keep, ttl_s.
# Of the `waiting` requests, admits as many as every tally has room for beyond `base`, and
# sets this process's units to at least `floor` and at most what the limit leaves it, aiming
# at base + admitted + keep. Returns {admitted, then per tally: mine, total, room}.
_EXCHANGE = """
local now = tonumber(ARGV[1])
local me = ARGV[2]
local admitted = tonumber(ARGV[3])
local limit, base, floor, keep, ttl = {}, {}, {}, {}, {}
local mine, total, room = {}, {}, {}
for i = 1, 3 do
  local at = 3 + (i - 1) * 5
  limit[i] = tonumber(ARGV[at + 1])
  if limit[i] >= 0 then
    base[i], floor[i] = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    keep[i], ttl[i] = tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])
    if i == 2 then
      local lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
      if #lapsed > 0 then
        redis.call('HDEL', KEYS[2], unpack(lapsed))
        redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
      end
      total[i] = 0
      for _, held in ipairs(redis.call('HVALS', KEYS[2])) do total[i] = total[i] + held end
    else
      total[i] = tonumber(redis.call('HGET', KEYS[i], '#') or '0')
    end
    mine[i] = tonumber(redis.call('HGET', KEYS[i], me) or '0')
    room[i] = limit[i] - (total[i] - mine[i]) - base[i]
    if room[i] < admitted then admitted = math.max(room[i], 0) end
  end
end
local out = {admitted}
for i = 1, 3 do
  if limit[i] >= 0 then
    local most = limit[i] - (total[i] - mine[i])
    local new = math.max(floor[i], math.min(most, base[i] + admitted + keep[i]))
    if new ~= mine[i] then
      if new > 0 then redis.call('HSET', KEYS[i], me, new) else redis.call('HDEL', KEYS[i], me) end
      if i ~= 2 then redis.call('HINCRBY', KEYS[i], '#', new - mine[i]) end
      total[i] = total[i] + new - mine[i]
    end
    if i == 2 then
      if new > 0 then redis.call('ZADD', KEYS[4], now + ttl[i], me)
      else redis.call('ZREM', KEYS[4], me) end
      redis.call('EXPIRE', KEYS[4], math.ceil(ttl[i]) * 3)
    end
    if new > 0 then redis.call('EXPIRE', KEYS[i], math.ceil(ttl[i]) * (i == 2 and 3 or 1)) end
    mine[i] = new
    table.insert(out, new)
    table.insert(out, total[i])
    table.insert(out, room[i])
  else
    table.insert(out, -1)
    table.insert(out, -1)
    table.insert(out, -1)
  end
end
return out
"""

# KEYS: the registry. ARGV: now, process id, ttl_s. Returns the live processes.
_HEARTBEAT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]))
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) * 3)
return redis.call('ZCARD', KEYS[1])
"""

_FAILURES = (RedisError, OSError, TimeoutError)


class StoreUnavailableError(Exception):
    """Redis could not be used just now; the message names the error's type only (never the
    URL, which may carry a password)."""


class LimitStore:
    def __init__(self, url: str, *, prefix: str, timeout_s: float, max_connections: int) -> None:
        # Blocking pool: with every connection busy, a call waits up to `timeout_s` for one
        # (redis-py's default pool raises at once, which must never pass for an outage).
        # One retry, at once, on a fresh connection: a pooled one Redis closed is not an
        # outage; timeouts are not retried, they already cost `timeout_s`.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._client: Any = redis.Redis.from_pool(pool)
        self._exchange = self._client.register_script(_EXCHANGE)
        self._heartbeat = self._client.register_script(_HEARTBEAT)
        self._prefix = prefix

    def __repr__(self) -> str:
        return "LimitStore()"  # the URL may carry a password

    async def close(self) -> None:
        await self._client.aclose()

    async def exchange(
        self,
        key_id: str,
        windows: Windows,
        *,
        now: float,
        process_id: str,
        waiting: int,
        planned: Sequence[Planned | None],
        lease_ttl_s: float,
    ) -> tuple[int, list[TallyAnswer | None]]:
        """One atomic round trip for a key: (requests admitted of `waiting`, each tally's
        answer in the order planned)."""
        base = f"{self._prefix}:{{{key_id}}}"
        keys = [
            f"{base}:quota:{windows.quota_label or '-'}",
            f"{base}:slots",
            f"{base}:rpm:{windows.minute}",
            f"{base}:slots:expiry",
        ]
        ttls = (math.ceil(windows.quota_reset_s) + MINUTE_S, lease_ttl_s, 2 * MINUTE_S)
        args: list[Any] = [repr(now), process_id, waiting]
        for part, ttl_s in zip(planned, ttls, strict=True):
            if part is None:
                args += [-1, 0, 0, 0, 0]
            else:
                request = part.request
                args += [request.limit, request.base, request.floor, request.keep, repr(ttl_s)]
        try:
            reply = await self._exchange(keys=keys, args=args)
        except _FAILURES as exc:
            raise StoreUnavailableError(type(exc).__name__) from exc
        values = [int(value) for value in reply]
        answers: list[TallyAnswer | None] = []
        for at, part in zip((1, 4, 7), planned, strict=True):
            answers.append(None if part is None else TallyAnswer(*values[at : at + 3]))
        return values[0], answers

    async def heartbeat(self, process_id: str, *, now: float, ttl_s: float) -> int:
        """Register this process as live for `ttl_s`; the number of live processes."""
        try:
            count = await self._heartbeat(
                keys=[f"{self._prefix}:processes"], args=[repr(now), process_id, repr(ttl_s)]
            )
        except _FAILURES as exc:
            raise StoreUnavailableError(type(exc).__name__) from exc
        return max(1, int(count))

    async def leave(self, process_id: str) -> None:
        """Deregister this process (it is stopping)."""
        try:
            await self._client.zrem(f"{self._prefix}:processes", process_id)
        except _FAILURES as exc:
            raise StoreUnavailableError(type(exc).__name__) from exc
