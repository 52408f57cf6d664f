"""The ledger: `record(row)` is a list append on the request path; a writer task batches rows
into the store off it, at most `flush_interval_s` after the first row of a batch or as soon as
`batch_rows` are waiting, and drains everything on `close()`.

A failed flush keeps its rows and retries; inserts are idempotent on the request id, so a retry
or a restart never duplicates a row. What a SIGKILL can lose is what was recorded but not yet
flushed: at most one flush window of rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from warmgate.proxy.ledger.row import LedgerRow
from warmgate.proxy.ledger.usage import GroupBy, LedgerStore, UsageBucket, UsageFilter

DEFAULT_FLUSH_INTERVAL_S = 0.1
DEFAULT_BATCH_ROWS = 500
DEFAULT_MAX_PENDING = 1_000_000
CLOSE_ATTEMPTS = 3

_log = structlog.get_logger("warmgate.ledger")


class Ledger:
    def __init__(
        self,
        store: LedgerStore,
        *,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        max_pending: int = DEFAULT_MAX_PENDING,
        enabled: bool = True,
        flush_observer: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        # Told how long each batch took to write (warmgate_ledger_flush_seconds).
        self._flush_observer = flush_observer
        self._monotonic = monotonic
        self.enabled = enabled
        self._interval_s = flush_interval_s
        self._batch_rows = batch_rows
        self._max_pending = max_pending
        self._pending: list[LedgerRow] = []
        self._flushing: list[LedgerRow] = []
        self._has_rows = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0

    # -- the request path --------------------------------------------------------------------

    def record(self, row: LedgerRow) -> None:
        """Queue one row; never waits, never touches the database."""
        if not self.enabled:
            return
        pending = self._pending
        if not pending:
            self._has_rows.set()
        pending.append(row)
        if len(pending) >= self._batch_rows:
            self._full.set()
            if len(pending) > self._max_pending:
                del pending[0]
                self.dropped += 1
                _log.error("ledger_row_dropped", reason="pending rows over max_pending")

    # -- lifespan ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        self._closing.clear()
        self._task = asyncio.create_task(self._run(), name="warmgate-ledger-writer")

    async def close(self) -> None:
        """Stop the writer, flush every recorded row, close the store."""
        self._closing.set()
        self._has_rows.set()
        self._full.set()  # cut short a batch window in progress
        if self._task is not None:
            task, self._task = self._task, None
            await task
        for attempt in range(1, CLOSE_ATTEMPTS + 1):
            try:
                await self.flush()
                break
            except Exception as exc:  # noqa: BLE001 report any store failure, then give up
                _log.error(
                    "ledger_drain_failed",
                    attempt=attempt,
                    rows=len(self._pending),
                    error=type(exc).__name__,
                )
        await self.store.close()

    async def __aenter__(self) -> Ledger:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- writing -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._flushing)

    async def flush(self) -> int:
        """Write every queued row now; the number of rows newly inserted."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            self._flushing = batch
            started = self._monotonic()
            try:
                inserted = await self.store.insert(batch)
            except BaseException:
                self._pending[:0] = batch  # keep order; the retry is idempotent
                raise
            finally:
                self._flushing = []
                if self._flush_observer is not None:
                    self._flush_observer(self._monotonic() - started)
            self.written += inserted
            return inserted

    async def _run(self) -> None:
        while not self._closing.is_set():
            await self._has_rows.wait()
            self._has_rows.clear()
            if self._closing.is_set():
                return
            if len(self._pending) < self._batch_rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), timeout=self._interval_s)
            self._full.clear()
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 the rows stay queued; retry after a pause
                _log.error("ledger_flush_failed", rows=len(self._pending), error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=self._interval_s)
            if self._pending:
                self._has_rows.set()

    # -- reading (usage API; not the request path) ---------------------------------------------

    async def get(self, request_id: str) -> LedgerRow | None:
        for row in (*self._flushing, *self._pending):
            if row.request_id == request_id:
                return row
        return await self.store.get(request_id)

    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]:
        """Sums over the stored rows, after flushing so that an edge reads its own writes."""
        await self.flush()
        return await self.store.usage(where, group_by)

    async def rows(self, where: UsageFilter) -> list[LedgerRow]:
        await self.flush()
        return await self.store.rows(where)

    async def admitted_since(self, start: float) -> dict[str, int]:
        """Per key, the requests since `start` that a quota counts (seeds a local limiter)."""
        await self.flush()
        return await self.store.admitted_since(start)
