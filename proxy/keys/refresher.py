"""Keeps an edge's key ring in step with the store, so a revocation reaches every edge in seconds.

The store is read off the request path every `interval_s`; a failed read keeps the last good
snapshot (an edge must not lock everyone out because its database blinked).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import structlog

from warmgate.proxy.keys.key import Key
from warmgate.proxy.keys.ring import KeyRing
from warmgate.proxy.keys.store import KeyStore

DEFAULT_REFRESH_INTERVAL_S = 2.0

_log = structlog.get_logger("warmgate.keys")


class KeyRefresher:
    def __init__(
        self,
        store: KeyStore,
        ring: KeyRing,
        *,
        static_keys: Sequence[tuple[str, Key]] = (),
        interval_s: float = DEFAULT_REFRESH_INTERVAL_S,
        on_refresh: Callable[[int], None] | None = None,
    ) -> None:
        """`on_refresh(keys)` runs after every reload (metrics, tests waiting for one)."""
        self._store = store
        self._ring = ring
        self._static = tuple(static_keys)
        self._interval_s = interval_s
        self._on_refresh = on_refresh
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load once (so the edge starts with its keys), then refresh in the background."""
        await self.refresh()
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="warmgate-key-refresher")

    async def close(self) -> None:
        self._stopping.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task

    async def refresh(self) -> int:
        """Reload the ring from the store now; the number of keys in it."""
        stored = await self._store.load()
        self._ring.replace([*self._static, *stored])
        if self._on_refresh is not None:
            self._on_refresh(len(self._ring))
        return len(self._ring)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval_s)
            if self._stopping.is_set():
                return
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 any store failure keeps the last snapshot
                _log.warning("key_refresh_failed", error=type(exc).__name__)
