"""The admit stage: per-key requests per minute, concurrent requests, a request quota.

What each limit guarantees, by where the counts are kept (N: the limiter processes sharing
the limits, every worker of every edge; windows are UTC minutes, days and months, the same on
every process, and an admission counts in the window it was decided in):

- One process without Redis (`LocalLimiter`): exact; a restart resumes quotas from the ledger.
- N workers of one edge without Redis: each enforces its part of every limit
  (`shares.worker_share`); the parts sum to the limit, so no key gets more than its limit, and
  a key whose requests reach only some workers gets less.
- Redis reachable (`RedisLimiter`): exact upper bounds across all processes: no minute gets
  more than the rpm, no day or month more than the quota, never more requests in flight than
  the concurrency. Units leased ahead and not yet used (at most 5 % of a limit over all
  processes, none for limits under 20 per process) make a key get up to that much less while
  another process holds them.
- Redis unreachable from a process: never open. It admits at most what it holds plus its
  local share (`[limits] local_share`, else 1/N) of what was left of the limit when it last
  heard from Redis: at most its share of the whole limit more. All processes cut off: a window
  that begins during the outage gets at most the limit; the window the outage began in can get
  more by what other processes were granted after a process last heard from Redis. Once Redis
  answers, each process records what it admitted, and keeps to its local cap in a window it
  lived through that way until all have recorded theirs (two probe intervals). Slots lapse in
  Redis one lease (10 s) after their last renewal: processes still reaching Redis may then
  admit up to the cut-off process's requests in flight more.
"""

from warmgate.proxy.limits.admission import Admission, Limiter, Unlimited
from warmgate.proxy.limits.health import EventLog, LimiterHealth
from warmgate.proxy.limits.local import LocalLimiter, QuotaSeed
from warmgate.proxy.limits.policy import (
    Counters,
    Refusal,
    go_duration,
    ratelimit_headers,
    refusal_for,
)
from warmgate.proxy.limits.redis_limiter import DEFAULT_STORE_TIMEOUT_S, RedisLimiter

__all__ = [
    "Admission",
    "Counters",
    "Limiter",
    "LimiterHealth",
    "LocalLimiter",
    "RedisLimiter",
    "Refusal",
    "Unlimited",
    "build_limiter",
    "go_duration",
    "ratelimit_headers",
    "refusal_for",
]


def build_limiter(
    *,
    enabled: bool = True,
    redis_url: str | None = None,
    quota_seed: QuotaSeed | None = None,
    default_rpm: int | None = None,
    local_share: float | None = None,
    store_timeout_s: float | None = None,
    worker_count: int = 1,
    worker_index: int = 0,
    events: EventLog | None = None,
) -> Limiter:
    """The limiter the settings ask for: none, in this process (its quotas seeded from the
    ledger), or shared through Redis (whose counters outlive any edge). `default_rpm` is the
    rpm of every key without its own (0 or None: such keys have no per-minute limit).

    `worker_count` processes of one edge (`worker_index` is this one) each build one: with
    Redis they share every limit exactly; without, each enforces its part of every limit
    (see `local`). `local_share` is the part of each limit a process enforces while Redis is
    unreachable (None: 1 / the number of live processes)."""
    if not enabled:
        return Unlimited()
    if redis_url:
        return RedisLimiter(
            redis_url,
            default_rpm=default_rpm,
            local_share=local_share,
            store_timeout_s=store_timeout_s or DEFAULT_STORE_TIMEOUT_S,
            worker_count=worker_count,
            events=events,
        )
    return LocalLimiter(
        quota_seed=quota_seed,
        default_rpm=default_rpm,
        worker_count=worker_count,
        worker_index=worker_index,
    )
