"""A wall clock that tests move by hand, for what stamps or counts by the time of day."""

from __future__ import annotations


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
