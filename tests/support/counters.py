"""Waiting for a counter that no event announces to reach a number, without polling.

Some states are reached by tasks that only need the event loop to run them (a request that joins
the limiter's queue bumps its `waits` counter), and the code under test has no event to say so.
`counted(obj, name, target)` turns the counter into one for the duration of a wait: the
object's class is swapped for a subclass whose `name` is a property that sets an event once
the value reaches `target`, and the original class is put back afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def counted(obj: Any, name: str, target: int) -> AsyncIterator[asyncio.Event]:
    """An event set once `obj.<name>` (an instance attribute) reaches `target`."""
    reached = asyncio.Event()
    original = type(obj)

    def read(self: Any) -> int:
        value: int = self.__dict__[name]
        return value

    def write(self: Any, value: int) -> None:
        self.__dict__[name] = value
        if value >= target:
            reached.set()

    obj.__class__ = type(original.__name__, (original,), {name: property(read, write)})
    try:
        if getattr(obj, name) >= target:
            reached.set()
        yield reached
    finally:
        obj.__class__ = original
