"""Which backend holds a stored response: Responses API ids bound to the backend that made them.

SGLang keeps responses in its own memory, so retrieving one, cancelling it, or continuing from
it (`previous_response_id`) must reach the same replica, through whichever edge the request
arrives and after a restart. Bindings are written through to the gateway's database
(`proxy.store.bindings`: SQLite for one edge, PostgreSQL shared by a fleet) and kept in this
edge's memory, newest kept up to a capacity.

The costs, per request: a chat request pays nothing; a request that names a response this edge
knows pays a dict lookup; one this edge does not know (made through another edge, or before a
restart) pays one database read. An answer that creates a response waits for its binding to be
written (batched with others, bounded by `wait_s`) before its last byte leaves, so that the
client's next request finds it on any edge. A write that fails is kept and retried; the
response stays usable through this edge meanwhile. An id nobody bound (or another key's) is
unknown, which the gateway answers with OpenAI's 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable

import structlog

from warmgate.proxy.store.bindings import Binding, BindingStore
from warmgate.proxy.store.outage import is_outage

DEFAULT_CAPACITY = 100_000
DEFAULT_WAIT_S = 2.0
DEFAULT_RETENTION_S = 30 * 86_400.0  # OpenAI keeps stored responses 30 days
PURGE_INTERVAL_S = 3_600.0
RETRY_PAUSE_S = 1.0
MAX_UNWRITTEN = 100_000  # bindings kept for a retry while the store is down
MAX_ID_CHARS = 512

_log = structlog.get_logger("warmgate.bindings")

__all__ = ["Binding", "ResponseBindings"]

_Write = tuple[str, Binding, asyncio.Future[None] | None]


class ResponseBindings:
    def __init__(
        self,
        store: BindingStore | None = None,
        *,
        capacity: int = DEFAULT_CAPACITY,
        wait_s: float = DEFAULT_WAIT_S,
        retention_s: float = DEFAULT_RETENTION_S,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`store` None: this edge's memory only."""
        self._store = store
        self._capacity = capacity
        self._wait_s = wait_s
        self._retention_s = retention_s
        self._clock = clock
        self._monotonic = monotonic
        self._bindings: OrderedDict[str, Binding] = OrderedDict()
        self._writes: list[_Write] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._failing = False
        self._purged_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.lost = 0  # bindings never written: refused, or over MAX_UNWRITTEN

    # -- lifespan ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._store is None:
            return
        await self._store.start()
        await self._purge_if_due()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="warmgate-bindings-writer")

    async def close(self) -> None:
        """Write what is queued (one last try), then close the store."""
        if self._task is not None:
            self._closing = True
            self._wake.set()
            task, self._task = self._task, None
            await task
        if self._store is not None:
            await self._store.close()

    # -- the request path --------------------------------------------------------------------

    def bind(self, response_id: str, binding: Binding) -> asyncio.Future[None] | None:
        """Bind at once in memory and queue the write; the future is done once the write
        landed (or failed and was queued for a retry). None: nothing to wait for."""
        self._remember(response_id, binding)
        if self._store is None or not _storable(response_id):
            return None
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writes.append((response_id, binding, written))
        self._wake.set()
        return written

    async def landed(self, written: asyncio.Future[None] | None) -> None:
        """Wait until the write behind `written` is done, `wait_s` at most; never raises."""
        if written is not None and not written.done():
            await asyncio.wait((written,), timeout=self._wait_s)

    async def find(self, response_id: str, key_id: str | None) -> Binding | None:
        """The binding of `response_id`, if the same key created it: from memory, else one
        read of the store (`StoreUnavailable` when it cannot answer in time)."""
        binding = self._bindings.get(response_id)
        if binding is None and self._store is not None and _storable(response_id):
            binding = await self._store.find(response_id)
            if binding is not None:
                self._remember(response_id, binding)
        if binding is None or binding.key_id != key_id:
            return None
        return binding

    def __len__(self) -> int:
        return len(self._bindings)

    def _remember(self, response_id: str, binding: Binding) -> None:
        self._bindings[response_id] = binding
        self._bindings.move_to_end(response_id)
        while len(self._bindings) > self._capacity:
            self._bindings.popitem(last=False)

    # -- the writer --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._writes and not self._closing:
                await self._purge_if_due()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=PURGE_INTERVAL_S)
            self._wake.clear()
            batch, self._writes = self._writes, []
            landed = await self._write(batch) if batch else True
            if self._closing and (not landed or not self._writes):
                if self._writes:
                    self.lost += len(self._writes)
                    _log.error("response_bindings_unwritten", bindings=len(self._writes))
                return
            if not landed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=RETRY_PAUSE_S)

    async def _write(self, batch: list[_Write]) -> bool:
        """Insert `batch`; True when it is done with (landed, or refused for good), False when
        the store is away and it was queued again. Every waiter is released either way."""
        assert self._store is not None
        try:
            await self._store.insert([(rid, binding) for rid, binding, _ in batch])
        except Exception as exc:  # noqa: BLE001 the store's failure decides a retry or a loss
            _release(batch)
            if not is_outage(exc):
                self.lost += len(batch)
                _log.error(
                    "response_bindings_refused", bindings=len(batch), error=type(exc).__name__
                )
                return True
            kept = batch[: max(0, MAX_UNWRITTEN - len(self._writes))]
            self._writes[:0] = [(rid, binding, None) for rid, binding, _ in kept]
            self.lost += len(batch) - len(kept)
            if not self._failing:
                self._failing = True
                _log.error("response_bindings_store_failing", error=type(exc).__name__)
            return False
        self.written += len(batch)
        _release(batch)
        if self._failing:
            self._failing = False
            _log.info("response_bindings_store_recovered")
        return True

    async def _purge_if_due(self) -> None:
        """Delete bindings past the retention, at most once per PURGE_INTERVAL_S."""
        now = self._monotonic()
        if self._store is None or now - self._purged_at < PURGE_INTERVAL_S:
            return
        self._purged_at = now
        try:
            purged = await self._store.purge(self._clock() - self._retention_s)
        except Exception as exc:  # noqa: BLE001 the next purge will do
            _log.warning("response_bindings_purge_failed", error=type(exc).__name__)
            return
        if purged:
            _log.info("response_bindings_purged", bindings=purged)


def _release(batch: list[_Write]) -> None:
    for _, _, written in batch:
        if written is not None and not written.done():
            written.set_result(None)


def _storable(response_id: str) -> bool:
    return 0 < len(response_id) <= MAX_ID_CHARS and response_id.isprintable()
