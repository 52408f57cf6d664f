"""One request as the gateway accounts for it: filled in along the way, closed exactly once.

Closing turns it into the ledger row (billing decided by the pure rule in `proxy.ledger`) and
the request's single log line. A `finally` may close it again: only the first call counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol

from warmgate.proxy.ledger.billing import decide
from warmgate.proxy.ledger.row import LedgerRow

# Response ids the way OpenAI shapes them; the same id is the x-request-id and the ledger's key.
ID_PREFIXES = {"chat.completions": "chatcmpl-", "completions": "cmpl-"}
OTHER_PREFIX = "req_"


def new_request_id(endpoint: str) -> str:
    # os.urandom is what secrets.token_hex calls, without its three Python frames per request
    return ID_PREFIXES.get(endpoint, OTHER_PREFIX) + os.urandom(16).hex()


class LedgerSink(Protocol):
    def record(self, row: LedgerRow) -> None: ...


class RequestSink(Protocol):
    """Where the per-request log line goes (`proxy.logs.RequestLog`)."""

    def request(self, row: LedgerRow) -> None: ...


class Exchange:
    __slots__ = (
        "_clock",
        "_closed",
        "_monotonic",
        "_started",
        "backend",
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
    )

    def __init__(
        self,
        endpoint: str,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._started = monotonic()
        self._closed = False
        self.started_at = clock()
        self.request_id = new_request_id(endpoint)
        self.endpoint = endpoint
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

    def elapsed_ms(self) -> float:
        return (self._monotonic() - self._started) * 1000.0

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = self._monotonic()

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
        billed, reason = decide(
            status=self.status,
            completed=self.completed,
            delivered_tokens=self.delivered_tokens,
            cancelled=self.cancelled,
            error_code=self.error_code,
        )
        row = LedgerRow(
            request_id=self.request_id,
            key_id=self.key_id,
            model=self.model,
            backend=self.backend,
            endpoint=self.endpoint,
            stream=self.stream,
            started_at=self.started_at,
            finished_at=self._clock(),
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
        log.request(row)
        return row
