"""The ledger: `record(row)` on the request path, a writer task that stores rows off it.

`record` makes the row storable (`proxy.ledger.sanitizer`), appends it to the spool
(`proxy.ledger.spool`: one `os.write`, so a killed process loses no recorded row) and queues
it. The writer task batches the queue into the store, at most `flush_interval_s` after the
first row of a batch or as soon as `batch_rows` are waiting, and drains everything on
`close()`. A flush that stored its batch deletes the spool segments it covered.

Failures, and what each does:
- The database refuses a batch for what a row holds (`RowsRejected`): the batch is bisected
  until every row that lands has landed; each row refused alone is set aside
  (`proxy.ledger.dead_letters`), and billing goes on.
- The database is away or too slow (`StoreUnavailable`): the rows stay queued (and spooled)
  and the flush is retried with a growing pause; one log line when the store goes away, one
  when it is back. Inserts are idempotent on the request id, so a retry, or a replay of the
  spool at the next start, never duplicates a row.
- More than `max_pending` rows wait (a long outage): the queue is spilled to the spool alone
  (its segments are let go, to be claimed again once the store has caught up), so memory
  stays bounded and no row is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

import structlog

from warmgate.proxy.ledger.dead_letters import DeadLetters
from warmgate.proxy.ledger.row import LedgerRow
from warmgate.proxy.ledger.sanitizer import sanitized
from warmgate.proxy.ledger.spool import Spool
from warmgate.proxy.ledger.usage import (
    GroupBy,
    LedgerStore,
    RowsRejected,
    UsageBucket,
    UsageFilter,
)
from warmgate.proxy.observability.metrics import Family, Merge, Sample
from warmgate.proxy.store.outage import DEFAULT_READ_TIMEOUT_S, deadline

DEFAULT_FLUSH_INTERVAL_S = 0.1
DEFAULT_BATCH_ROWS = 500
DEFAULT_MAX_PENDING = 1_000_000
CLOSE_ATTEMPTS = 3
# Rows per flush at most: a backlog (a long outage, a replayed spool) is caught up in inserts
# that each finish well within the write timeout.
MAX_FLUSH_ROWS = 10_000
MAX_RETRY_PAUSE_S = 2.0
# How often, while the store keeps up, the spool directory is looked over for segments that no
# live process holds (a worker that died, rows spilled during an outage).
SWEEP_INTERVAL_S = 10.0

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
        spool: Spool | None = None,
        dead_letters: DeadLetters | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        flush_observer: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        # Told how long each batch took to write (warmgate_ledger_flush_seconds).
        self._flush_observer = flush_observer
        self._monotonic = monotonic
        self.enabled = enabled
        self.spool = spool
        self.dead_letters = dead_letters or DeadLetters(None)
        self._interval_s = flush_interval_s
        self._batch_rows = batch_rows
        self._max_pending = max_pending
        self._read_timeout_s = read_timeout_s
        self._pending: list[LedgerRow] = []
        self._flushing: list[LedgerRow] = []
        self._has_rows = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._store_failures = 0  # consecutive failed flushes
        self._unspooled = 0  # rows queued since the spool last held them all
        self._swept_at = monotonic()
        self.dropped = 0
        self.spilled = 0
        self.written = 0
        self.replayed = 0

    # -- the request path --------------------------------------------------------------------

    def record(self, row: LedgerRow) -> None:
        """Spool and queue one row; never waits, never touches the database."""
        if not self.enabled:
            return
        row = sanitized(row)
        if self.spool is not None and not self.spool.append(row):
            self._unspooled += 1
        pending = self._pending
        if not pending:
            self._has_rows.set()
        pending.append(row)
        if len(pending) >= self._batch_rows:
            self._full.set()
            if len(pending) > self._max_pending:
                self._overflow()

    def _overflow(self) -> None:
        spool = self.spool
        if spool is not None and not self._unspooled:
            # Every queued row is in the spool: let its segments go and forget the rows here.
            spilled = len(self._pending)
            spool.close(keep=True)
            self._pending = []
            self.spilled += spilled
            _log.error("ledger_rows_spilled", rows=spilled, reason="pending rows over max_pending")
            return
        del self._pending[0]
        self.dropped += 1
        _log.error("ledger_row_dropped", reason="pending rows over max_pending")

    # -- lifespan ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        self._replay()
        self._closing.clear()
        self._task = asyncio.create_task(self._run(), name="warmgate-ledger-writer")

    async def close(self) -> None:
        """Stop the writer, flush every recorded row, close the store. Rows that could not be
        stored stay in the spool for the next start."""
        self._closing.set()
        self._has_rows.set()
        self._full.set()  # cut short a batch window in progress
        if self._task is not None:
            task, self._task = self._task, None
            await task
        failures = 0
        while self._pending and failures < CLOSE_ATTEMPTS:
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 report any store failure, then give up
                failures += 1
                _log.error(
                    "ledger_drain_failed",
                    attempt=failures,
                    rows=len(self._pending),
                    error=type(exc).__name__,
                )
        if self.spool is not None:
            if self._pending:
                _log.warning("ledger_rows_left_in_spool", rows=len(self._pending))
            self.spool.close(keep=bool(self._pending))
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
        """Write the queued rows now (MAX_FLUSH_ROWS at most); the number newly inserted."""
        async with self._flush_lock:
            spool = self.spool
            if spool is not None and not spool.sealed:
                spool.seal()  # the queued rows' segments; deleted once those rows are stored
            batch = self._pending[:MAX_FLUSH_ROWS]
            self._pending = self._pending[MAX_FLUSH_ROWS:]
            if not batch:
                if spool is not None:
                    spool.discard()  # nothing queued, nothing in flight: every row is stored
                return 0
            took_all = not self._pending  # then every row of the sealed segments is in batch
            self._flushing = batch
            started = self._monotonic()
            refused: list[tuple[LedgerRow, str]] = []
            try:
                inserted = await self._insert(batch, refused)
            except BaseException:
                self._pending[:0] = batch  # keep order; the retry is idempotent
                raise
            finally:
                self._flushing = []
                if self._flush_observer is not None:
                    self._flush_observer(self._monotonic() - started)
            self.written += inserted
            for error, rows in _by_error(refused).items():
                self.dead_letters.set_aside(rows, error)
            if spool is not None and took_all:
                spool.discard()
                self._unspooled = 0
            return inserted

    async def _insert(self, rows: list[LedgerRow], refused: list[tuple[LedgerRow, str]]) -> int:
        """Insert `rows`; when the database refuses them, bisect until each refused row is
        alone (collected in `refused`) and every other row has landed."""
        try:
            return await self.store.insert(rows)
        except RowsRejected as exc:
            if len(rows) == 1:
                refused.append((rows[0], str(exc)))
                return 0
        half = len(rows) // 2
        return await self._insert(rows[:half], refused) + await self._insert(rows[half:], refused)

    def _replay(self) -> None:
        """Queue the rows of spool segments no live process holds (a crash, a failed drain)."""
        if self.spool is None:
            return
        room = max(self._batch_rows, self._max_pending // 2 - len(self._pending))
        rows = [sanitized(row) for row in self.spool.claim(room)]
        if rows:
            self.replayed += len(rows)
            self._pending[:0] = rows
            self._has_rows.set()
            _log.info("ledger_spool_replayed", rows=len(rows))

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
                self._store_failed(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=self._retry_pause_s())
            else:
                self._store_back()
                self.sweep()
            if self._pending:
                self._has_rows.set()

    def _store_failed(self, exc: Exception) -> None:
        self._store_failures += 1
        if self._store_failures == 1:
            _log.error("ledger_store_failing", rows=self.pending, error=type(exc).__name__)

    def _store_back(self) -> None:
        if self._store_failures:
            _log.info("ledger_store_recovered", failed_flushes=self._store_failures)
            self._store_failures = 0

    def _retry_pause_s(self) -> float:
        doubling = 2.0 ** min(self._store_failures, 8)
        return min(MAX_RETRY_PAUSE_S, self._interval_s * doubling)

    def sweep(self) -> None:
        """Once the writer has caught up (nothing queued), at most every SWEEP_INTERVAL_S:
        queue the rows of spool segments no live process holds (a worker that died, rows
        spilled during an outage)."""
        if self._pending or self._monotonic() - self._swept_at < SWEEP_INTERVAL_S:
            return
        self._swept_at = self._monotonic()
        self._replay()

    # -- reading (usage API; not the request path) ---------------------------------------------

    async def get(self, request_id: str) -> LedgerRow | None:
        for row in (*self._flushing, *self._pending):
            if row.request_id == request_id:
                return row
        return await self.store.get(request_id)

    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]:
        """Sums over the stored rows, after flushing so that an edge reads its own writes."""
        async with deadline(self._read_timeout_s):
            await self.flush()
            return await self.store.usage(where, group_by)

    async def rows(self, where: UsageFilter) -> list[LedgerRow]:
        async with deadline(self._read_timeout_s):
            await self.flush()
            return await self.store.rows(where)

    async def admitted_since(self, start: float) -> dict[str, int]:
        """Per key, the requests since `start` that a quota counts (seeds a local limiter)."""
        async with deadline(self._read_timeout_s):
            await self.flush()
            return await self.store.admitted_since(start)

    # -- metrics -------------------------------------------------------------------------------

    def collect(self) -> Iterable[Family]:
        """The ledger's gauges and counters, for `/metrics`."""

        def one(name: str, help_text: str, kind: str, value: float) -> Family:
            # Every gauge here is a quantity of this process: the edge's is their sum.
            merge: Merge = "sum" if kind == "gauge" else None
            return Family(name, help_text, kind, (Sample((), float(value)),), merge=merge)

        spool = self.spool
        return (
            one(
                "warmgate_ledger_queue_rows",
                "Rows recorded, not yet stored.",
                "gauge",
                self.pending,
            ),
            one("warmgate_ledger_rows_written_total", "Rows stored.", "counter", self.written),
            one(
                "warmgate_ledger_rows_dropped_total",
                "Rows dropped from a full queue that no spool held (the store was away for long).",
                "counter",
                self.dropped,
            ),
            one(
                "warmgate_ledger_rows_spilled_total",
                "Rows left to the spool alone while the queue was full, stored once it drains.",
                "counter",
                self.spilled,
            ),
            one(
                "warmgate_ledger_rows_set_aside_total",
                "Rows the database refused, kept in the dead-letter file.",
                "counter",
                self.dead_letters.count,
            ),
            one(
                "warmgate_ledger_rows_replayed_total",
                "Rows read back from the spool (a crash, an outage).",
                "counter",
                self.replayed,
            ),
            one(
                "warmgate_ledger_store_up",
                "1 while flushes succeed, 0 while the database is failing.",
                "gauge",
                0 if self._store_failures else 1,
            ),
            one(
                "warmgate_ledger_spool_bytes",
                "Bytes in this process's spool segments.",
                "gauge",
                spool.bytes if spool is not None else 0,
            ),
            one(
                "warmgate_ledger_spool_failures_total",
                "Rows the spool could not append (the row stayed in memory).",
                "counter",
                spool.failures if spool is not None else 0,
            ),
        )


def _by_error(refused: list[tuple[LedgerRow, str]]) -> dict[str, list[LedgerRow]]:
    groups: dict[str, list[LedgerRow]] = {}
    for row, error in refused:
        groups.setdefault(error, []).append(row)
    return groups
