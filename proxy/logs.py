"""Structured logs: one JSON line per request, and the gateway's own events.

A request's line carries its id, key id, model, backend, status, timings and token counts:
the ledger row's public fields. No secret ever enters one: the row holds no key, only the key's
public id. The logger is built per app (no global structlog configuration), writing bytes
rendered by msgspec to the file it is given, so tests read exactly what operators would.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any, BinaryIO

import msgspec
import structlog

from proxy.ledger.row import LedgerRow

_encoder = msgspec.json.Encoder()


def _render(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
    return _encoder.encode(event)


class RequestLog:
    """The gateway's logger; `request(row)` writes the canonical line of one request."""

    def __init__(self, sink: BinaryIO | None = None, *, enabled: bool = True) -> None:
        self._enabled = enabled
        self._logger: Any = structlog.wrap_logger(
            structlog.BytesLogger(sink if sink is not None else sys.stdout.buffer),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                _render,
            ],
        )

    def request(self, row: LedgerRow) -> None:
        if not self._enabled:
            return
        self._logger.info(
            "request",
            request_id=row.request_id,
            key_id=row.key_id,
            model=row.model,
            backend=row.backend,
            endpoint=row.endpoint,
            stream=row.stream,
            status=row.status,
            error_code=row.error_code,
            billed=row.billed,
            ttft_ms=None if row.ttft_ms is None else round(row.ttft_ms, 3),
            total_ms=round(row.total_ms, 3),
            prompt_tokens=row.prompt_tokens,
            cached_tokens=row.cached_tokens,
            completion_tokens=row.completion_tokens,
            retries=row.retries,
            cancelled=row.cancelled,
        )

    def event(self, name: str, **fields: object) -> None:
        """A lifecycle event (started, stopped, a backend ejected): never per request."""
        self._logger.info(name, **fields)

    def warning(self, name: str, **fields: object) -> None:
        self._logger.warning(name, **fields)
