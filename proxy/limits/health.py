"""How the shared limits store is doing, as counters for metrics and one log line per change.

`LimiterHealth` is the snapshot a limiter's `health()` returns: monotonic counters since the
limiter started, plus the store's state now. A metrics exporter publishes them as they are
(counters as Prometheus counters, `store_reachable` and `processes` as gauges). The log gets
one line when the store becomes unreachable (`limits_store_unreachable`) and one when it is
back (`limits_store_reachable`), never one per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol

import msgspec
import structlog

from warmgate.proxy.observability.metrics import Family, Sample

StoreState = Literal["none", "reachable", "unreachable"]


class EventLog(Protocol):
    """Where state changes are logged (the gateway's request log has both methods)."""

    def event(self, name: str, **fields: object) -> None: ...
    def warning(self, name: str, **fields: object) -> None: ...


class StructlogEvents:
    """The fallback sink: structlog with whatever configuration the process has."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("warmgate.limits")

    def event(self, name: str, **fields: object) -> None:
        self._log.info(name, **fields)

    def warning(self, name: str, **fields: object) -> None:
        self._log.warning(name, **fields)


class LimiterHealth(msgspec.Struct, frozen=True, kw_only=True):
    """A limiter's counters since it started and its store's state now."""

    # "none": limits held in this process only; else whether Redis answers now.
    store: StoreState = "none"
    # Limiter processes sharing the limits (Redis: live ones seen in its registry; without
    # Redis: the edge's workers), whose number sets the local shares.
    processes: int = 1
    exchanges: int = 0  # round trips with Redis that granted or returned units
    waits: int = 0  # requests that waited for such a round trip (then admitted or refused)
    store_errors: int = 0  # calls to Redis that failed (refused, timed out, no connection)
    outages: int = 0  # times Redis became unreachable
    degraded_admitted: int = 0  # admissions decided on local shares while Redis was out
    degraded_refused: int = 0  # refusals decided on local shares while Redis was out


class HealthTracker:
    """The mutable side of `LimiterHealth`, kept by the Redis limiter."""

    def __init__(self, events: EventLog, *, monotonic: Callable[[], float] = time.monotonic):
        self._events = events
        self._monotonic = monotonic
        self.reachable = True
        self.processes = 1
        self.exchanges = 0
        self.waits = 0
        self.store_errors = 0
        self.outages = 0
        self.degraded_admitted = 0
        self.degraded_refused = 0
        self._down_since = 0.0
        self._down_admitted = 0
        self._down_refused = 0

    def failed(self, error: str, *, local_share: float) -> None:
        """A call to Redis failed; the first failure of an outage is logged."""
        self.store_errors += 1
        if not self.reachable:
            return
        self.reachable = False
        self.outages += 1
        self._down_since = self._monotonic()
        self._down_admitted, self._down_refused = self.degraded_admitted, self.degraded_refused
        self._events.warning(
            "limits_store_unreachable",
            error=error,
            processes=self.processes,
            local_share=round(local_share, 4),
        )

    def answered(self) -> bool:
        """Redis answered; True (and logged) when that ends an outage."""
        if self.reachable:
            return False
        self.reachable = True
        self._events.event(
            "limits_store_reachable",
            unreachable_s=round(self._monotonic() - self._down_since, 3),
            degraded_admitted=self.degraded_admitted - self._down_admitted,
            degraded_refused=self.degraded_refused - self._down_refused,
        )
        return True

    def snapshot(self) -> LimiterHealth:
        return LimiterHealth(
            store="reachable" if self.reachable else "unreachable",
            processes=self.processes,
            exchanges=self.exchanges,
            waits=self.waits,
            store_errors=self.store_errors,
            outages=self.outages,
            degraded_admitted=self.degraded_admitted,
            degraded_refused=self.degraded_refused,
        )


def limiter_families(health: LimiterHealth) -> list[Family]:
    """A limiter's health as `/metrics` families (a worker's counters, summed for the edge)."""

    def counter(name: str, help_text: str, value: int) -> Family:
        return Family(name, help_text, "counter", (Sample((), float(value)),))

    families = [
        counter(
            "warmgate_limits_store_round_trips_total",
            "Round trips with the shared limits store that granted or returned units.",
            health.exchanges,
        ),
        counter(
            "warmgate_limits_waits_total",
            "Requests that waited for a round trip with the shared limits store.",
            health.waits,
        ),
        counter(
            "warmgate_limits_store_errors_total",
            "Calls to the shared limits store that failed (refused, timed out, no connection).",
            health.store_errors,
        ),
        counter(
            "warmgate_limits_store_outages_total",
            "Times the shared limits store became unreachable.",
            health.outages,
        ),
        Family(
            "warmgate_limits_degraded_decisions_total",
            "Admissions decided on local shares while the shared limits store was unreachable.",
            "counter",
            (
                Sample((("outcome", "admitted"),), float(health.degraded_admitted)),
                Sample((("outcome", "refused"),), float(health.degraded_refused)),
            ),
        ),
    ]
    if health.store != "none":
        families.append(
            Family(
                "warmgate_limits_store_reachable",
                "1 while the shared limits store answers, 0 while limits run on local shares.",
                "gauge",
                (Sample((), 1.0 if health.store == "reachable" else 0.0),),
                merge="min",
            )
        )
    return families
