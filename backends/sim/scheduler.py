"""One replica's engine: a waiting queue, continuous batching, chunked prefill and decode steps.

Time is simulated: every step has a duration from the latency model and the scheduler's clock
(`now`, in simulated seconds) advances by it; with `time_scale > 0` the step also really waits
`duration * time_scale`, so clients see the same shape in wall time. Request timings (queue,
TTFT, inter-token) are measured on the simulated clock and so do not depend on the host's load.

Like SGLang's scheduler the policy is prefill-first: when waiting requests can be admitted, the
next forward pass is a prefill chunk of at most `chunked_prefill_size` uncached tokens (the
running decodes stall); otherwise it is one decode step for every running request.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from warmgate.backends.sim.config import SimConfig
from warmgate.backends.sim.generation import Generation, QueueFullError
from warmgate.backends.sim.prefix_cache import PrefixCache
from warmgate.backends.sim.telemetry import Telemetry

Sleep = Callable[[float], Awaitable[None]]


class Scheduler:
    """Admits, prefills and decodes `Generation`s; owns the prefix cache's contents."""

    def __init__(
        self,
        config: SimConfig,
        cache: PrefixCache,
        telemetry: Telemetry,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self.cache = cache
        self.telemetry = telemetry
        self.slow_decode_factor = 1.0
        self.paused = False
        self._monotonic = monotonic
        self._sleep = sleep
        self._origin = monotonic()
        self._sim_now = 0.0
        self._waiting: deque[Generation] = deque()
        self._prefilling: list[Generation] = []
        self._decoding: list[Generation] = []
        self._by_rid: dict[str, Generation] = {}
        self._reserved_tokens = 0
        self._wake = asyncio.Event()
        self._watchers: list[asyncio.Future[None]] = []
        self.last_step_tokens_per_s = 0.0
        # /v1/loads: SGLang's decode step-time moment sums [steps, sum batch, sum step_us,
        # sum batch^2, sum batch*step_us, sum generated] and prefill busy time, on the
        # simulated clock (the step times SGLang would measure on the modelled hardware)
        self.decode_moments = [0.0] * 6
        self.prefill_busy_us = 0
        # forward passes that sent any request an output (a token or an abort): SGLang's
        # tokenizer manager bumps last_receive_tstamp on each, and /health_generate reads it
        self.outputs = 0

    # ---- clock and state views
    def now(self) -> float:
        """Simulated seconds since start. While busy it advances by the model's step durations
        only (so timings are the model's, whatever the host's load); while idle, with
        time_scale > 0, it catches up with wall time ÷ time_scale."""
        scale = self.config.time_scale
        if scale > 0 and not self.busy:
            self._sim_now = max(self._sim_now, (self._monotonic() - self._origin) / scale)
        return self._sim_now

    @property
    def num_running(self) -> int:
        return len(self._prefilling) + len(self._decoding)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_waiting_uncached_tokens(self) -> int:
        return sum(g.prompt_tokens for g in self._waiting)

    @property
    def used_tokens(self) -> int:
        return self._reserved_tokens

    @property
    def busy(self) -> bool:
        return bool(self._waiting or self._prefilling or self._decoding)

    # ---- requests
    def submit(self, generation: Generation) -> None:
        """Queue a request; raises QueueFullError when `max_queued_requests` is reached."""
        limit = self.config.max_queued_requests
        if limit is not None and len(self._waiting) + 1 > limit:
            raise QueueFullError("The request queue is full.")
        generation.arrived_at = self.now()
        self._waiting.append(generation)
        self._by_rid[generation.rid] = generation
        self._wake.set()
        self._changed()

    def abort(self, generation: Generation, reason: str = "abort") -> bool:
        """Remove a request wherever it is and free its KV at once; False if already finished."""
        if generation.finished:
            return False
        if generation in self._waiting:
            self._waiting.remove(generation)
        elif generation in self._prefilling:
            self._prefilling.remove(generation)
            self._reserved_tokens -= generation.reserved_tokens
        elif generation in self._decoding:
            self._decoding.remove(generation)
            self._reserved_tokens -= generation.reserved_tokens
        self._by_rid.pop(generation.rid, None)
        generation.finish(reason, self.now())
        self.telemetry.aborted += 1
        self.outputs += 1
        self._wake.set()  # freed KV may admit a waiting request
        self._changed()
        return True

    def abort_rid(self, rid: str | None, abort_all: bool) -> int:
        targets = (
            list(self._by_rid.values())
            if abort_all
            else [self._by_rid[rid]]
            if rid in self._by_rid
            else []
        )
        return sum(self.abort(g) for g in targets)

    def flush_cache(self) -> bool:
        """Empty the prefix cache; refused (False) while requests run, as SGLang does."""
        if self.busy:
            return False
        self.cache.clear()
        return True

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._wake.set()
        self._changed()

    async def wait_until(self, predicate: Callable[[Scheduler], bool]) -> None:
        """Return once `predicate(self)` holds; re-checked at every state change."""
        loop = asyncio.get_running_loop()
        while not predicate(self):
            waiter: asyncio.Future[None] = loop.create_future()
            self._watchers.append(waiter)
            await waiter

    def notify(self) -> None:
        """Re-check the predicates of `wait_until` (for state kept outside the scheduler)."""
        self._changed()

    def _changed(self) -> None:
        if self._watchers:
            watchers, self._watchers = self._watchers, []
            for waiter in watchers:
                if not waiter.done():
                    waiter.set_result(None)

    # ---- the engine loop
    async def run(self) -> None:
        """Step forever (until cancelled by the replica that owns this task)."""
        while True:
            if self.paused or not self.busy:
                self._wake.clear()
                await self._wake.wait()
                continue
            start = self.now()
            if self._admit() or self._prefilling:
                duration, finish = self._prefill_step()
            elif self._decoding:
                duration, finish = self._decode_step()
            else:  # queued work that cannot be admitted yet: wait for a change
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.config.time_scale > 0:
                await self._sleep(duration * self.config.time_scale)
            else:
                await asyncio.sleep(0)
            self._sim_now = start + duration
            finish()

    def _admit(self) -> bool:
        config = self.config
        admitted = False
        while self._waiting and self.num_running < config.max_running_requests:
            generation = self._waiting[0]
            need = generation.prompt_tokens + generation.output_tokens
            if self._reserved_tokens + need > config.kv_tokens and self.num_running:
                break
            self._waiting.popleft()
            cached = min(self.cache.match(generation.block_hashes), generation.prompt_tokens - 1)
            generation.admit(max(cached, 0), need, self._sim_now)
            self._reserved_tokens += need
            self.cache.evict(config.kv_tokens - self._reserved_tokens)
            self._prefilling.append(generation)
            admitted = True
        if admitted:
            self._changed()
        return admitted

    def _prefill_step(self) -> tuple[float, Callable[[], None]]:
        config = self.config
        budget = config.chunked_prefill_size
        chunk: list[tuple[Generation, int]] = []
        for generation in self._prefilling:
            if budget <= 0:
                break
            take = min(budget, generation.prefill_remaining)
            chunk.append((generation, take))
            budget -= take
        tokens = config.chunked_prefill_size - budget
        duration = config.prefill_overhead_s + tokens / config.prefill_tokens_per_s
        self.prefill_busy_us += int(duration * 1e6)

        def finish() -> None:
            done_now = self._sim_now
            sampled = False
            for generation, take in chunk:
                if generation.finished:
                    continue
                generation.prefill_remaining -= take
                if generation.prefill_remaining > 0:
                    continue
                self._prefilling.remove(generation)
                self.cache.insert(generation.block_hashes)
                self.cache.evict(config.kv_tokens - self._reserved_tokens)
                self.telemetry.prefilled(generation)
                sampled = True
                if generation.emit(done_now):  # the prefill pass samples the first token
                    self._release(generation)
                else:
                    self._decoding.append(generation)
            if sampled:  # a chunk that ends no prompt sends nothing back (SGLang alike)
                self.outputs += 1
            self._changed()

        return duration, finish

    def _decode_step(self) -> tuple[float, Callable[[], None]]:
        config = self.config
        batch = list(self._decoding)
        step = config.itl_base_s + config.itl_per_running_req_s * len(batch)
        duration = step * self.slow_decode_factor
        self.last_step_tokens_per_s = len(batch) / duration if duration > 0 else 0.0

        def finish() -> None:
            done_now = self._sim_now
            ended = False
            generated = 0
            observe = self.telemetry.itl.observe  # per token, as SGLang's collector does
            for generation in batch:
                if generation.finished:
                    continue
                generated += 1
                if generation.log_metrics:
                    observe(done_now - generation.last_token_at)
                if generation.emit(done_now):
                    self._release(generation)
                    ended = True
            if ended:
                self._decoding = [g for g in self._decoding if not g.finished]
            self._add_decode_moment(len(batch), int(duration * 1e6), generated)
            self.telemetry.decoded(len(batch))
            self.outputs += 1
            self._changed()

        return duration, finish

    def _add_decode_moment(self, batch: int, step_us: int, generated: int) -> None:
        if batch <= 0 or step_us <= 0:
            return
        moments = self.decode_moments
        moments[0] += 1.0
        moments[1] += batch
        moments[2] += step_us
        moments[3] += batch * batch
        moments[4] += batch * step_us
        moments[5] += generated

    def _release(self, generation: Generation) -> None:
        self._reserved_tokens -= generation.reserved_tokens
        self._by_rid.pop(generation.rid, None)
        self.telemetry.completed(generation)
