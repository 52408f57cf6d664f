"""One request as the gateway accounts for it: filled in along the way, closed exactly once.

Closing turns it into the ledger row (billing decided by the pure rule in `proxy.ledger`) and
the request's single log line. A `finally` may close it again: only the first call counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from warmgate.proxy.ids import new_request_id
from warmgate.proxy.ledger.billing import billing_decision
from warmgate.proxy.ledger.row import LedgerRow
from warmgate.proxy.observability.logs import RequestLine
from warmgate.proxy.observability.tracing import RequestTrace


class LedgerSink(Protocol):
    def record(self, row: LedgerRow) -> None: ...


class RequestSink(Protocol):
    """Where the per-request log line goes (`proxy.observability.logs.RequestLog`)."""

    def request(self, line: RequestLine) -> None: ...


class Exchange:
    __slots__ = (
        "_clock",
        "_closed",
        "_monotonic",
        "_started",
        "backend",
        "billable",
        "cached_tokens",
        "cancelled",
        "completed",
        "completion_tokens",
        "delivered_tokens",
        "endpoint",
        "error_code",
        "first_byte_at",
        "key_id",
        "model",
        "price_micro_usd",
        "prompt_tokens",
        "queue_ms",
        "request_id",
        "retries",
        "started_at",
        "status",
        "stream",
        "trace",
    )

    def __init__(
        self,
        endpoint: str,
        *,
        id_prefix: str,
        billable: bool = True,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._started = monotonic()
        self._closed = False
        self.started_at = clock()
        self.request_id = new_request_id(id_prefix)
        self.endpoint = endpoint
        self.billable = billable
        self.key_id: str | None = None
        self.model: str | None = None
        self.backend: str | None = None
        self.stream = False
        self.status = 200
        self.price_micro_usd = 0
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.completion_tokens = 0
        self.delivered_tokens = 0
        self.queue_ms = 0.0
        self.first_byte_at: float | None = None
        self.retries = 0
        self.completed = False
        self.cancelled = False
        self.error_code: str | None = None
        # The request's trace (its spans, or its incoming context passed on); None: untraced.
        self.trace: RequestTrace | None = None

    def elapsed_ms(self) -> float:
        return (self._monotonic() - self._started) * 1000.0

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = self._monotonic()
            if self.trace is not None:
                self.trace.first_token()

    def close(self, ledger: LedgerSink, log: RequestSink) -> LedgerRow | None:
        """Write the ledger row and the log line; None when already closed."""
        if self._closed:
            return None
        self._closed = True
        total_ms = self.elapsed_ms()
        ttft_ms = (
            (self.first_byte_at - self._started) * 1000.0
            if self.first_byte_at is not None
            else None
        )
        billed, reason = billing_decision(
            billable=self.billable,
            status=self.status,
            completed=self.completed,
            delivered_tokens=self.delivered_tokens,
            cancelled=self.cancelled,
            error_code=self.error_code,
        )
        finished_at = self._clock()
        row = LedgerRow(
            request_id=self.request_id,
            key_id=self.key_id,
            model=self.model,
            backend=self.backend,
            endpoint=self.endpoint,
            stream=self.stream,
            started_at=self.started_at,
            finished_at=finished_at,
            status=self.status,
            billed=billed,
            billed_reason=str(reason),
            price_micro_usd=self.price_micro_usd,
            prompt_tokens=self.prompt_tokens,
            cached_tokens=self.cached_tokens,
            completion_tokens=self.completion_tokens,
            queue_ms=self.queue_ms,
            ttft_ms=ttft_ms,
            total_ms=total_ms,
            retries=self.retries,
            cancelled=self.cancelled,
            error_code=self.error_code,
        )
        ledger.record(row)
        log.request(
            RequestLine(
                request_id=self.request_id,
                key_id=self.key_id,
                model=self.model,
                backend=self.backend,
                endpoint=self.endpoint,
                stream=self.stream,
                status=self.status,
                error_code=self.error_code,
                billed=billed,
                ttft_ms=None if ttft_ms is None else round(ttft_ms, 3),
                total_ms=round(total_ms, 3),
                prompt_tokens=self.prompt_tokens,
                cached_tokens=self.cached_tokens,
                completion_tokens=self.completion_tokens,
                retries=self.retries,
                cancelled=self.cancelled,
                ts=round(finished_at, 6),
                trace_id=None if self.trace is None else self.trace.trace_id,
            )
        )
        if self.trace is not None:
            self.trace.finish(self.status, self.error_code)
        return row
