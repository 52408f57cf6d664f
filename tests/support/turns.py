"""Waiting for a state that no event announces, by loop turns rather than by time.

Some states are reached by tasks that only need the event loop to run them (a task just
created reaches its first real wait), and the code under test has no event to say so. Waiting
a fixed time for them would be a guess; this runs the loop one turn at a time until the state
holds, and fails loudly if it never does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MAX_TURNS = 1000


async def turns_until(holds: Callable[[], bool], max_turns: int = MAX_TURNS) -> None:
    """Return once `holds()` is true, letting ready tasks run in between (one loop turn each,
    no time passes); AssertionError after `max_turns` turns."""
    for _ in range(max_turns):
        if holds():
            return
        await asyncio.sleep(0)  # one turn of the loop: the ready tasks run
    raise AssertionError(f"not reached in {max_turns} loop turns")
