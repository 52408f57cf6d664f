"""The connect stage's deadline: a timer that cancels the attempt, told apart from a client
that leaves (`proxy.pipeline.deadline`). Loop time is never waited for: a deadline already
past fires on the loop's next turn."""

from __future__ import annotations

import asyncio

import pytest

from warmgate.proxy.pipeline.deadline import Deadline

pytestmark = pytest.mark.anyio


async def _wait_with(deadline_in_s: float, *, cancel_too: bool) -> tuple[bool, int]:
    """What the attempt sees: (whether the deadline was the cause, cancellations left)."""
    parked = asyncio.Event()

    async def attempt() -> tuple[bool, int]:
        task = asyncio.current_task()
        assert task is not None
        deadline = Deadline(deadline_in_s)
        try:
            parked.set()
            await asyncio.Event().wait()  # a backend that never answers
        except asyncio.CancelledError:
            return deadline.expired(), task.cancelling()
        finally:
            deadline.disarm()
        raise AssertionError("the wait cannot end otherwise")

    task = asyncio.create_task(attempt())
    await parked.wait()
    if cancel_too:
        task.cancel()  # the client leaves
    return await task


async def test_a_past_deadline_cancels_the_attempt_and_takes_its_cancellation_back() -> None:
    assert await _wait_with(-1.0, cancel_too=False) == (True, 0)


async def test_a_client_leaving_is_not_taken_for_the_deadline() -> None:
    assert await _wait_with(3600.0, cancel_too=True) == (False, 1)


async def test_a_client_leaving_as_the_deadline_fires_wins() -> None:
    expired, cancelling = await _wait_with(-1.0, cancel_too=True)
    assert not expired
    assert cancelling == 1  # the client's cancellation stands: the request ends as cancelled


async def test_a_disarmed_deadline_never_fires() -> None:
    loop = asyncio.get_running_loop()
    when = loop.time() - 1.0
    deadline = Deadline(-1.0)  # due at `when` or a hair after
    deadline.disarm()
    later = asyncio.Event()
    loop.call_at(when + 0.5, later.set)  # due after the deadline: timers fire in time order
    await later.wait()
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    assert not deadline.expired()
