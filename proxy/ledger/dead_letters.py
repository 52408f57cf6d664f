"""Rows the database refused even alone, set aside in a file so that billing goes on.

The writer isolates such a row by bisecting its batch (`proxy.ledger.writer`); the row is then
appended here as one JSON line with why and when, counted, and logged; the rest of the batch
and every later row land. An operator can read the file, mend a row and insert it again with
the same request id (the insert is idempotent).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from warmgate.proxy.ledger.row import LedgerRow

_log = structlog.get_logger("warmgate.ledger")


class DeadLetter(msgspec.Struct, kw_only=True):
    """One line of the file."""

    set_aside_at: float  # unix seconds
    error: str  # the database's error class, never its message (it may quote the row)
    row: LedgerRow


_encode = msgspec.json.Encoder().encode


class DeadLetters:
    def __init__(self, path: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        """`path` None: rows are counted and logged, not kept (a ledger without a data dir)."""
        self.path = path
        self._clock = clock
        self.count = 0

    def set_aside(self, rows: list[LedgerRow], error: str) -> None:
        """Keep `rows` (refused with `error`); one log line for all of them."""
        if not rows:
            return
        self.count += len(rows)
        kept = self.path is not None
        if self.path is not None:
            now = self._clock()
            data = b"".join(
                _encode(DeadLetter(set_aside_at=now, error=error, row=row)) + b"\n" for row in rows
            )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(
                    self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
                )
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            except OSError:
                kept = False
        _log.error(
            "ledger_rows_set_aside",
            rows=len(rows),
            error=error,
            request_ids=[row.request_id for row in rows[:10]],
            file=str(self.path) if kept else None,
            total=self.count,
        )
