"""Per-key limits: requests per minute, concurrent requests, a request quota, allowed models."""

from proxy.limits.admission import Admission, Limiter, Unlimited
from proxy.limits.local import LocalLimiter
from proxy.limits.policy import Counters, Refusal, decide, go_duration, ratelimit_headers
from proxy.limits.redis_limiter import RedisLimiter

__all__ = [
    "Admission",
    "Counters",
    "Limiter",
    "LocalLimiter",
    "RedisLimiter",
    "Refusal",
    "Unlimited",
    "build_limiter",
    "decide",
    "go_duration",
    "ratelimit_headers",
]


def build_limiter(*, enabled: bool = True, redis_url: str | None = None) -> Limiter:
    """The limiter the settings ask for: none, in this process, or shared through Redis."""
    if not enabled:
        return Unlimited()
    if redis_url:
        return RedisLimiter(redis_url)
    return LocalLimiter()
