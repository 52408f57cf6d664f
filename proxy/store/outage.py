"""A database the gateway cannot reach, as the gateway answers it.

`StoreUnavailable` is OpenAI's 503 shape for a request that needs the store (usage, admin keys,
a stored response's binding) while it is down; a partitioned database answers 503 within a
timeout, never a hang, never a 500.

A driver call cannot simply be cancelled at its timeout: asyncpg answers a cancellation by
opening a new connection to send PostgreSQL a cancel request, and through a partition that
connection waits out its own connect timeout (60 s by default), so the caller would wait too.
`Deadlines.run` therefore runs each call as a task of its own and stops waiting at the
timeout; a call that outlives its deadline is cancelled and left to unwind in the background,
owned by its `Deadlines` and reaped at `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from warmgate.proxy.errors import GatewayError

T = TypeVar("T")

# Reads answer a person waiting on an HTTP request; writes run off the request path and may
# take longer (a large batch) before they are given up and retried.
DEFAULT_READ_TIMEOUT_S = 5.0
DEFAULT_WRITE_TIMEOUT_S = 10.0
# Opening a connection (and asyncpg's cancel request, which opens one) gives up after this.
DEFAULT_CONNECT_TIMEOUT_S = 5.0
# At close, how long calls that outlived their deadline get to unwind.
REAP_TIMEOUT_S = 1.0


class StoreUnavailable(GatewayError):  # noqa: N818  # named like its siblings in proxy.errors
    status = 503
    type = "server_error"
    code = "store_unavailable"


def unavailable() -> StoreUnavailable:
    return StoreUnavailable("The gateway's database is not reachable right now; try again shortly.")


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the database is away (unreachable, timed out, shutting down,
    locked, out of disk), not that a statement or a value was wrong."""
    if isinstance(exc, TimeoutError | OSError | StoreUnavailable | sqlite3.OperationalError):
        return True
    asyncpg = sys.modules.get("asyncpg")  # loaded only where PostgreSQL is used
    if asyncpg is None:
        return False
    errors = asyncpg.exceptions
    return isinstance(
        exc,
        asyncpg.InterfaceError  # the connection closed under the call, the pool is closing
        | errors.PostgresConnectionError  # class 08: connection exceptions
        | errors.OperatorInterventionError  # class 57: shutdown, cannot connect now
        | errors.InsufficientResourcesError,  # class 53: out of disk, memory, connections
    )


@contextlib.asynccontextmanager
async def deadline(timeout_s: float) -> AsyncIterator[None]:
    """Bounds waits that are safe to cancel (locks, events, `Deadlines.run` calls): at
    `timeout_s`, or on an outage inside, `StoreUnavailable` is raised."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if is_outage(exc):
            raise unavailable() from exc
        raise


class Deadlines:
    """Runs one store's driver calls, each within a timeout; owns the calls that outlive it."""

    def __init__(self) -> None:
        self._abandoned: set[asyncio.Future[Any]] = set()

    async def run(self, call: Awaitable[T], timeout_s: float) -> T:
        """`await call`, or `StoreUnavailable` once `timeout_s` has passed or on an outage."""
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait((task,), timeout=timeout_s)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise unavailable()
        try:
            return task.result()
        except Exception as exc:
            if is_outage(exc):
                raise unavailable() from exc
            raise

    @property
    def abandoned(self) -> int:
        """Calls past their deadline still unwinding."""
        return len(self._abandoned)

    async def close(self, timeout_s: float = REAP_TIMEOUT_S) -> None:
        if self._abandoned:
            await asyncio.wait(tuple(self._abandoned), timeout=timeout_s)

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._reaped)

    def _reaped(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its failure was already answered as an outage
