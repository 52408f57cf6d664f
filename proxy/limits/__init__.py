"""The admit stage: per-key requests per minute, concurrent requests, a request quota."""

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
