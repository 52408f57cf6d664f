"""An admitted request's ticket: the headers to send and the concurrency slot to give back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from warmgate.proxy.keys.key import Key
from warmgate.proxy.limits.health import LimiterHealth

Headers = list[tuple[str, str]]


class Admission:
    __slots__ = ("_on_release", "headers")

    def __init__(self, headers: Headers, on_release: Callable[[], None] | None = None) -> None:
        self.headers = headers
        self._on_release = on_release

    def release(self) -> None:
        """Give the concurrency slot back; calling it again does nothing."""
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()

    @property
    def released(self) -> bool:
        return self._on_release is None


class Limiter(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def admit(self, key: Key, model: str) -> Admission: ...
    def health(self) -> LimiterHealth: ...


class Unlimited:
    """The limiter when limits are switched off (`[limits] enabled = false`): admits all."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def admit(self, key: Key, model: str) -> Admission:
        return Admission([])

    def health(self) -> LimiterHealth:
        return LimiterHealth()
