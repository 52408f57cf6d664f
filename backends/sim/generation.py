"""One request inside the engine: its token counts, its progress and its simulated timings."""

from __future__ import annotations

import asyncio


class QueueFullError(Exception):
    """The waiting queue holds `max_queued_requests` already (SGLang answers 503)."""


class Generation:
    """A request's life in the scheduler; the HTTP handler awaits its progress."""

    __slots__ = (
        "_done",
        "_waiter",
        "admitted_at",
        "arrived_at",
        "block_hashes",
        "cached_tokens",
        "finish_reason",
        "finished_at",
        "first_token_at",
        "generated",
        "itl_sum",
        "last_token_at",
        "log_metrics",
        "output_tokens",
        "prefill_remaining",
        "prompt_tokens",
        "reserved_tokens",
        "rid",
        "stop_reason",
        "streaming",
    )

    def __init__(
        self,
        rid: str,
        *,
        prompt_tokens: int,
        block_hashes: list[int],
        output_tokens: int,
        stop_reason: str,
        log_metrics: bool = True,
    ) -> None:
        self.rid = rid
        self.prompt_tokens = prompt_tokens
        self.block_hashes = block_hashes
        self.output_tokens = max(output_tokens, 1)
        self.stop_reason = stop_reason  # "stop" (EOS sampled) or "length" (max_new_tokens)
        self.log_metrics = log_metrics
        self.streaming = False  # set by stream routes: the is_streaming metrics label
        self.cached_tokens = 0
        self.prefill_remaining = prompt_tokens
        self.reserved_tokens = 0
        self.generated = 0
        self.finish_reason: str | None = None
        self.arrived_at = 0.0
        self.admitted_at = 0.0
        self.first_token_at = 0.0
        self.last_token_at = 0.0
        self.finished_at = 0.0
        self.itl_sum = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def ttft_s(self) -> float:
        return self.first_token_at - self.arrived_at

    @property
    def queue_s(self) -> float:
        return self.admitted_at - self.arrived_at

    @property
    def mean_itl_s(self) -> float:
        return self.itl_sum / (self.generated - 1) if self.generated > 1 else 0.0

    def admit(self, cached_tokens: int, reserved_tokens: int, now: float) -> None:
        self.cached_tokens = cached_tokens
        self.prefill_remaining = self.prompt_tokens - cached_tokens
        self.reserved_tokens = reserved_tokens
        self.admitted_at = now

    def emit(self, now: float) -> bool:
        """One more token was sampled at simulated time `now`; True when that ended it."""
        self.generated += 1
        if self.generated == 1:
            self.first_token_at = now
        else:
            self.itl_sum += now - self.last_token_at
        self.last_token_at = now
        if self.generated >= self.output_tokens:
            self.finish(self.stop_reason, now)
            return True
        self._wake()
        return False

    def finish(self, reason: str, now: float) -> None:
        if self.finish_reason is not None:
            return
        self.finish_reason = reason
        self.finished_at = now
        self._wake()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def progressed(self) -> None:
        """Return at the next token or at the end (immediately if already finished)."""
        if self.finish_reason is not None:
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        await waiter

    async def completed(self) -> None:
        if self.finish_reason is not None:
            return
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        await self._done

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._waiter = None
