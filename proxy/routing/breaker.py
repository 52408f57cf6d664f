"""The passive circuit breaker of one backend: a pure state machine over an injected clock.

Closed: requests flow; `failures` consecutive failures open it. Open: no requests until
`cooldown_s` has passed. Half-open: one trial request at a time; `close_after` successes
close it, any failure opens it again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Enum members read per request, looked up once here: on Python 3.11 each `Enum.MEMBER`
# read goes through the enum metaclass's __getattr__ hook, a slow generic lookup.
_CLOSED, _OPEN, _HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class CircuitBreaker:
    __slots__ = (
        "_clock",
        "_close_after",
        "_consecutive_failures",
        "_cooldown_s",
        "_failures",
        "_opened_at",
        "_state",
        "_trial_in_flight",
        "_trial_successes",
        "opened_count",
    )

    def __init__(
        self,
        *,
        failures: int,
        cooldown_s: float,
        close_after: int,
        clock: Callable[[], float],
    ) -> None:
        self._failures = failures
        self._cooldown_s = cooldown_s
        self._close_after = close_after
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._trial_successes = 0
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        if self._state is _OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._cooldown_s

    def allows(self) -> bool:
        """Whether a request may be sent now (does not claim the half-open trial)."""
        if self._state is _CLOSED:
            return True
        if self._state is _OPEN:
            return self._cooled_down()
        return not self._trial_in_flight

    def acquire(self) -> bool:
        """Called when a request is routed here; True when it is the half-open trial."""
        if self._state is _CLOSED:
            return False
        if self._state is _OPEN:
            self._state = BreakerState.HALF_OPEN
            self._trial_successes = 0
        self._trial_in_flight = True
        return True

    def record(self, *, failure: bool, trial: bool) -> bool:
        """Record an outcome; returns True when the breaker changed between open and closed."""
        if trial:
            self._trial_in_flight = False
        if failure:
            self._consecutive_failures += 1
            if self._state is _HALF_OPEN or (
                self._state is _CLOSED and self._consecutive_failures >= self._failures
            ):
                was_closed = self._state is _CLOSED
                self._open()
                return was_closed
            return False
        self._consecutive_failures = 0
        if self._state is _HALF_OPEN and trial:
            self._trial_successes += 1
            if self._trial_successes >= self._close_after:
                self._state = BreakerState.CLOSED
                return True
        return False

    def release_trial(self) -> None:
        """A trial that ended without a verdict (cancelled) frees the slot for another."""
        self._trial_in_flight = False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._trial_in_flight = False
        self.opened_count += 1

    def reset(self) -> None:
        """Close the breaker: an active probe found the backend healthy after an ejection."""
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._trial_in_flight = False
