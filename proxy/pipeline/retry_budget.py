"""The fleet-wide retry budget, as Envoy's: retries under way stay below a share of traffic.

A retry is under way from its routing until its attempt ends (connected, or failed). It may
start while fewer than max(`minimum`, `ratio` x requests in flight) are under way; else it is
refused and the request gets its last failure. Without a budget, a fault that fails every
attempt (a wedged replica, a query of death) multiplies the load on the rest of the fleet by
the attempts per request exactly when it has the least room.
"""

from __future__ import annotations

from collections.abc import Iterable

from warmgate.proxy.observability.metrics import Family, Sample

# Why a retry did not happen: the fleet's budget was spent, or the request's own failure
# could be its doing and it had been tried on `suspect_attempts` backends already.
REFUSED_BUDGET = "budget"
REFUSED_SUSPECT = "suspect_request"


class RetryBudget:
    __slots__ = ("_minimum", "_ratio", "in_flight", "refused", "retries")

    def __init__(self, *, ratio: float, minimum: int) -> None:
        self._ratio = ratio
        self._minimum = minimum
        self.in_flight = 0
        self.retries = 0
        self.refused = {REFUSED_BUDGET: 0, REFUSED_SUSPECT: 0}

    def allows(self, requests_in_flight: int) -> bool:
        """Whether one more retry may start now."""
        return self.in_flight < max(self._minimum, self._ratio * requests_in_flight)

    def started(self) -> None:
        self.in_flight += 1
        self.retries += 1

    def ended(self) -> None:
        self.in_flight -= 1

    def refuse(self, reason: str) -> None:
        self.refused[reason] += 1

    def metric_families(self) -> Iterable[Family]:
        yield Family(
            "warmgate_upstream_retries_total",
            "Attempts on another backend after a failed one.",
            "counter",
            [Sample((), float(self.retries))],
        )
        yield Family(
            "warmgate_upstream_retries_refused_total",
            "Retries not made: the fleet's retry budget was spent (budget), or the request "
            "had been tried on as many backends as a possibly harmful request may be "
            "(suspect_request).",
            "counter",
            [Sample((("reason", reason),), float(n)) for reason, n in self.refused.items()],
        )
        yield Family(
            "warmgate_upstream_retries_in_flight",
            "Retries under way now.",
            "gauge",
            [Sample((), float(self.in_flight))],
        )
