"""The admit stage: per-key requests per minute, concurrent requests, a request quota."""

from warmgate.proxy.limits.admission import Admission, Limiter, Unlimited
from warmgate.proxy.limits.local import LocalLimiter, QuotaSeed
from warmgate.proxy.limits.policy import (
    Counters,
    Refusal,
    go_duration,
    ratelimit_headers,
    refusal_for,
)
from warmgate.proxy.limits.redis_limiter import RedisLimiter

__all__ = [
    "Admission",
    "Counters",
    "Limiter",
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
) -> Limiter:
    """The limiter the settings ask for: none, in this process (its quotas seeded from the
    ledger), or shared through Redis (whose counters outlive any edge). `default_rpm` is the
    rpm of every key without its own (0 or None: such keys have no per-minute limit)."""
    if not enabled:
        return Unlimited()
    if redis_url:
        return RedisLimiter(redis_url, default_rpm=default_rpm)
    return LocalLimiter(quota_seed=quota_seed, default_rpm=default_rpm)
