"""A pool member: the live, mutable state of one backend (work in flight, health, load).

Only the event loop thread touches a member, so no locks: the request path changes counters
with plain arithmetic, the health checker and the load poller write their own fields.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence

from warmgate.proxy.observability.metrics import Family, Sample
from warmgate.proxy.routing.backend import Backend
from warmgate.proxy.routing.breaker import BreakerState, CircuitBreaker
from warmgate.proxy.settings import HealthSettings


class HealthState(enum.Enum):
    UNKNOWN = "unknown"  # not probed yet: not routed to
    HEALTHY = "healthy"
    EJECTED = "ejected"  # failed `eject_after` probes in a row


class RemoteLoad:
    """The backend's own view of its load (SGLang `/v1/loads`), with when it was read."""

    __slots__ = ("read_at", "requests", "token_usage", "tokens")

    def __init__(self, *, requests: int, tokens: int, token_usage: float, read_at: float) -> None:
        self.requests = requests  # running + waiting
        self.tokens = tokens  # KV tokens in use + uncached tokens waiting for prefill
        self.token_usage = token_usage
        self.read_at = read_at


# Enum members read per request, looked up once here: on Python 3.11 each `Enum.MEMBER`
# read goes through the enum metaclass's __getattr__ hook, a slow generic lookup.
_HEALTHY = HealthState.HEALTHY


class Member:
    __slots__ = (
        "backend",
        "breaker",
        "consecutive_failures",
        "consecutive_successes",
        "consecutive_timeouts",
        "ejections",
        "errors",
        "health",
        "last_probe_error",
        "last_progress_at",
        "outstanding",
        "outstanding_work",
        "probes",
        "readmitted_at",
        "remote",
        "requests",
        "retired",
        "rtt_s",
    )

    def __init__(
        self, backend: Backend, health: HealthSettings, clock: Callable[[], float]
    ) -> None:
        self.backend = backend
        self.breaker = CircuitBreaker(
            failures=health.breaker_failures,
            cooldown_s=health.breaker_cooldown_s,
            close_after=health.breaker_close_after,
            clock=clock,
        )
        self.health = HealthState.UNKNOWN if health.enabled else HealthState.HEALTHY
        self.outstanding = 0
        self.outstanding_work = 0.0
        self.requests = 0
        self.errors = 0
        self.ejections = 0
        self.probes = 0
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        # Requests in a row that got no first byte in time (the pool ejects past a threshold).
        self.consecutive_timeouts = 0
        self.last_probe_error: str | None = None
        self.last_progress_at = float("-inf")
        self.readmitted_at: float | None = None
        self.remote: RemoteLoad | None = None
        self.retired = False
        self.rtt_s: float | None = None  # EWMA of probe round trips: ranks other regions

    def load(self, now: float, stale_after_s: float) -> int:
        """Requests in flight: ours, or the backend's count when it reports more (other edges)."""
        remote = self.remote
        if remote is not None and now - remote.read_at <= stale_after_s:
            return max(self.outstanding, remote.requests)
        return self.outstanding

    def work(self, now: float, stale_after_s: float) -> float:
        """Prompt tokens in flight: ours, or the backend's tokens in use and queued if more."""
        remote = self.remote
        if remote is not None and now - remote.read_at <= stale_after_s:
            return max(self.outstanding_work, float(remote.tokens))
        return self.outstanding_work

    def share(self, now: float, health: HealthSettings) -> float:
        """The fraction of its traffic a readmitted backend takes during slow start."""
        if self.readmitted_at is None or health.slow_start_s <= 0:
            return 1.0
        ramp = (now - self.readmitted_at) / health.slow_start_s
        if ramp >= 1.0:
            self.readmitted_at = None
            return 1.0
        floor = health.slow_start_floor
        return floor + (1.0 - floor) * max(ramp, 0.0)

    def record_rtt(self, seconds: float, smoothing: float) -> None:
        """Fold one probe's round trip into the moving average."""
        rtt = self.rtt_s
        self.rtt_s = seconds if rtt is None else rtt + smoothing * (seconds - rtt)

    def saturated(self, fresh_after: float, token_usage: float) -> bool:
        """Its own recent load report shows at least `token_usage` of its KV cache in use."""
        remote = self.remote
        return (
            remote is not None
            and remote.read_at >= fresh_after
            and (remote.token_usage >= token_usage)
        )

    @property
    def routable(self) -> bool:
        """Healthy and its breaker lets a request through now."""
        return self.health is _HEALTHY and not self.retired and self.breaker.allows()

    def describe(self, now: float, stale_after_s: float) -> dict[str, object]:
        """The admin view of this member (never the key)."""
        remote = self.remote
        breaker: BreakerState = self.breaker.state
        return {
            **self.backend.describe(),
            "health": self.health.value,
            "breaker": breaker.value,
            "routable": self.routable,
            "retired": self.retired,
            "outstanding": self.outstanding,
            "outstanding_work": self.outstanding_work,
            "load": self.load(now, stale_after_s),
            "remote_load": None
            if remote is None
            else {
                "requests": remote.requests,
                "tokens": remote.tokens,
                "token_usage": remote.token_usage,
                "age_s": round(now - remote.read_at, 3),
            },
            "requests": self.requests,
            "errors": self.errors,
            "ejections": self.ejections,
            "breaker_opened": self.breaker.opened_count,
            "probes": self.probes,
            "last_probe_error": self.last_probe_error,
            "slow_start": self.readmitted_at is not None,
            "rtt_ms": None if self.rtt_s is None else round(self.rtt_s * 1000, 3),
        }


def member_gauges(members: Sequence[Member]) -> Iterator[Family]:
    """Prometheus gauges of the members, produced at scrape time."""
    labels = [(("backend", m.backend.id), ("model", m.backend.model)) for m in members]
    pairs = list(zip(labels, members, strict=True))
    yield Family(
        "warmgate_backend_healthy",
        "1 when the backend's probes pass and it is in the pool.",
        "gauge",
        [Sample(lb, float(m.health is HealthState.HEALTHY and not m.retired)) for lb, m in pairs],
    )
    yield Family(
        "warmgate_backend_breaker_open",
        "1 while the backend's circuit breaker keeps requests away.",
        "gauge",
        [Sample(lb, float(not m.breaker.allows())) for lb, m in pairs],
    )
    yield Family(
        "warmgate_backend_outstanding_requests",
        "Requests in flight from this gateway.",
        "gauge",
        [Sample(lb, float(m.outstanding)) for lb, m in pairs],
    )
    yield Family(
        "warmgate_backend_outstanding_tokens",
        "Estimated prompt tokens in flight from this gateway.",
        "gauge",
        [Sample(lb, m.outstanding_work) for lb, m in pairs],
    )
    yield Family(
        "warmgate_backend_rtt_seconds",
        "Moving average of the backend's probe round trip, by region (ranks spill-over).",
        "gauge",
        [
            Sample((*lb, ("region", m.backend.region or "")), m.rtt_s)
            for lb, m in pairs
            if m.rtt_s is not None
        ],
        "max",
    )
    yield Family(
        "warmgate_backend_ejections_total",
        "Times the backend was ejected (by active probes, or as an outlier by first-byte "
        "timeouts).",
        "counter",
        [Sample(lb, float(m.ejections)) for lb, m in pairs],
    )
