"""Per-key limits: requests per minute, concurrent requests, a request quota, allowed models."""

from proxy.limits.admission import Admission, Limiter, Unlimited
from proxy.limits.local import LocalLimiter
from proxy.limits.policy import Counters, Refusal, decide, go_duration, ratelimit_headers

__all__ = [
    "Admission",
    "Counters",
    "Limiter",
    "LocalLimiter",
    "Refusal",
    "Unlimited",
    "decide",
    "go_duration",
    "ratelimit_headers",
]
