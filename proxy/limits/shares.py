"""How a limit is divided among the processes that enforce it, as pure arithmetic.

Three divisions, each stated with what it guarantees:

- `spare_cap`: how many granted but unused units of a limit one limiter process may hold
  (leased from Redis ahead of demand so that a request need not wait a round trip). Spares
  are counted in Redis when granted, so they never let a key past its limit; unused ones held
  by other processes can only make a key get less. All processes together hold at most
  `SPARE_SHARE` of the limit.
- `worker_share`: without Redis, each worker process of an edge enforces a fixed part of
  every limit; the parts sum to the limit exactly, so no key ever gets more than its limit.
- `degraded_cap`: when Redis cannot be reached, a process admits up to what it already holds
  plus its local share of what was left of the limit when it last heard from Redis.
"""

from __future__ import annotations

import math
import zlib

# All processes together hold at most this share of a limit as unused grants (see `spare_cap`).
SPARE_SHARE = 0.05


def spare_cap(limit: int, processes: int) -> int:
    """Unused grants one of `processes` limiter processes may hold: 0 for small limits (then
    every request that needs a grant asks Redis for it, together with the requests waiting
    beside it), up to `SPARE_SHARE` of the limit split evenly."""
    return math.floor(limit * SPARE_SHARE / max(1, processes))


def worker_share(limit: int, key_id: str, worker_index: int, worker_count: int) -> int:
    """Worker `worker_index`'s part of `limit` when `worker_count` workers cannot share
    counters: the limit divided evenly, the remainder going to one more worker each, starting
    from a worker that depends on the key (a stable hash, the same in every process), so that
    the parts sum to `limit` and the remainders of different keys land on different workers.
    A part may be 0: with limit 1 and 2 workers, one worker refuses the key."""
    if worker_count <= 1:
        return limit
    base, remainder = divmod(limit, worker_count)
    offset = (zlib.crc32(key_id.encode()) + worker_index) % worker_count
    return base + (1 if offset < remainder else 0)


def degraded_cap(limit: int, mine: int, total: int, local_share: float) -> int:
    """How many units a process cut off from Redis may have in use in a window: the `mine`
    Redis had granted it, plus `local_share` of what was left (`limit - total`) when it last
    heard from Redis. A window it never heard of has mine = total = 0: its local share of the
    whole limit. With `local_share` = 1/N for N processes, N processes cut off at the same time
    admit at most the limit among them in a window none of them heard of, and at most one
    `local_share` of what was left each in the window the outage began."""
    return mine + math.floor(max(0, limit - total) * local_share)
