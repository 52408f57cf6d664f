"""A deadline on the current task: one loop timer that cancels it, told apart from any other
cancellation.

The connect stage bounds each attempt by its first-byte budget. `asyncio.timeout_at` does the
same, but as a context manager written in Python it cost about 1.5 % of a request's CPU (five
Python calls around the loop timer it arms), twice for a stream (the head, then the first
chunk). Here one timer covers the whole attempt: made before the first await, `disarm`ed after
the last, and in an `except asyncio.CancelledError`, `expired()` says whether the deadline was
the cause (then the cancellation is taken back and the caller raises its own timeout).
"""

from __future__ import annotations

import asyncio


class Deadline:
    __slots__ = ("_fired", "_handle", "_task")

    def __init__(self, seconds: float) -> None:
        """Armed at once: the current task is cancelled `seconds` from now."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        self._task = task
        self._fired = False
        self._handle = task.get_loop().call_later(seconds, self._fire)

    def _fire(self) -> None:
        self._fired = True
        self._task.cancel()

    def disarm(self) -> None:
        self._handle.cancel()

    def expired(self) -> bool:
        """In an `except asyncio.CancelledError`: whether this deadline cancelled the task and
        nothing else did too (a client that left at the same moment wins). When it did, the
        cancellation is taken back: the task goes on to raise its own timeout."""
        return self._fired and self._task.uncancel() == 0
