"""The fleet-wide retry budget, as Envoy's: retries stay below a share of traffic.

Requests and retries are counted over a sliding window (`window_s`, in one-second buckets). A
retry may start while the window holds fewer than max(`minimum`, `ratio` x requests) retries;
else it is refused and the request gets its last failure. Without a budget, a fault that fails
every attempt (a wedged replica, a query of death) multiplies the load on the rest of the
fleet by the attempts per request exactly when it has the least room. A window, rather than
retries under way, lets a burst through (the requests stuck on a replica that just wedged
all time out together) while still bounding the share over time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from warmgate.proxy.observability.metrics import Family, Sample

# Why a retry did not happen: the fleet's budget was spent, or the request's own failure
# could be its doing and it had been tried on `suspect_attempts` backends already.
REFUSED_BUDGET = "budget"
REFUSED_SUSPECT = "suspect_request"
WINDOW_S = 10


class RetryBudget:
    __slots__ = (
        "_bucket",
        "_clock",
        "_minimum",
        "_ratio",
        "_requests",
        "_retries",
        "_window_requests",
        "_window_retries",
        "refused",
        "retries",
    )

    def __init__(
        self,
        *,
        ratio: float,
        minimum: int,
        window_s: int = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._minimum = minimum
        self._clock = clock
        self._requests = [0] * window_s  # per one-second bucket, a ring
        self._retries = [0] * window_s
        self._bucket = int(clock())
        self._window_requests = 0
        self._window_retries = 0
        self.retries = 0
        self.refused = {REFUSED_BUDGET: 0, REFUSED_SUSPECT: 0}

    def _advance(self, now: int) -> int:
        """The slot of second `now`, buckets that fell out of the window emptied."""
        size = len(self._requests)
        if now != self._bucket:
            for second in range(max(self._bucket + 1, now - size + 1), now + 1):
                slot = second % size
                self._window_requests -= self._requests[slot]
                self._window_retries -= self._retries[slot]
                self._requests[slot] = self._retries[slot] = 0
            self._bucket = now
        return now % size

    def request(self) -> None:
        """A request reached the connect stage (every request: the usual second costs no
        call to `_advance`)."""
        now = int(self._clock())
        slot = now % len(self._requests) if now == self._bucket else self._advance(now)
        self._requests[slot] += 1
        self._window_requests += 1

    def allows(self) -> bool:
        """Whether one more retry may start now."""
        self._advance(int(self._clock()))
        return self._window_retries < max(self._minimum, self._ratio * self._window_requests)

    def started(self, *, budgeted: bool = True) -> None:
        """A retry begins; one that needs no room in the budget (after a refused connection)
        is counted in `retries` only."""
        self.retries += 1
        if budgeted:
            slot = self._advance(int(self._clock()))
            self._retries[slot] += 1
            self._window_retries += 1

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
