"""A lease: one request's claim on one backend, from routing until `finish`.

The request pipeline holds it for the whole exchange, calls `progress()` whenever the backend
sends a chunk and `finish(outcome)` exactly once at the end (a second call is ignored, so a
`finally` may call it again safely). Outstanding work, the circuit breaker and the metrics
update there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from warmgate.proxy.routing.backend import Backend, Outcome
from warmgate.proxy.routing.member import Member

# Enum members read per request, looked up once here: on Python 3.11 each `Enum.MEMBER`
# read goes through the enum metaclass's __getattr__ hook, a slow generic lookup.
_CANCELLED = Outcome.CANCELLED

if TYPE_CHECKING:
    from warmgate.proxy.observability.metrics import Metrics


class Lease:
    __slots__ = (
        "_clock",
        "_done",
        "_last_chunk_at",
        "_member",
        "_metrics",
        "_on_finish",
        "_trial",
        "backend",
        "started_at",
        "ttft_s",
        "weight",
    )

    def __init__(
        self,
        member: Member,
        *,
        weight: float,
        trial: bool,
        clock: Callable[[], float],
        metrics: Metrics,
        on_finish: Callable[[Member, Outcome, bool], None],
    ) -> None:
        self.backend: Backend = member.backend
        self.weight = weight
        self.started_at = clock()
        self.ttft_s: float | None = None
        self._member = member
        self._trial = trial
        self._clock = clock
        self._metrics = metrics
        self._on_finish = on_finish
        self._last_chunk_at: float | None = None
        self._done = False
        member.outstanding += 1
        member.outstanding_work += weight

    @property
    def finished(self) -> bool:
        return self._done

    def progress(self) -> None:
        """The backend sent a chunk: the first one gives the TTFT, later ones a token gap."""
        now = self._clock()
        backend = self.backend
        if self._last_chunk_at is None:
            self.ttft_s = now - self.started_at
            self._metrics.observe_ttft(backend.id, backend.model, self.ttft_s)
        else:
            self._metrics.observe_inter_token(backend.id, backend.model, now - self._last_chunk_at)
        self._last_chunk_at = now
        self._member.last_progress_at = now

    def finish(self, outcome: Outcome) -> None:
        """Release the backend; idempotent."""
        if self._done:
            return
        self._done = True
        member = self._member
        member.outstanding -= 1
        member.outstanding_work -= self.weight
        if member.outstanding == 0:
            member.outstanding_work = 0.0  # no float drift once idle
        member.requests += 1
        failed = outcome.is_failure
        if failed:
            member.errors += 1
        self._metrics.backend_request(
            self.backend.id, self.backend.model, outcome.value, failed=failed
        )
        if outcome is _CANCELLED and self._trial:
            member.breaker.release_trial()
            changed = False
        else:
            changed = member.breaker.record(failure=failed, trial=self._trial)
        self._on_finish(member, outcome, changed)

    def __repr__(self) -> str:
        return f"Lease(backend={self.backend.id!r}, finished={self._done})"
