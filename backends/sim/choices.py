"""The `n` choices of one request: SGLang runs each as its own generation in the scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from warmgate.backends.sim.answer import Answer
from warmgate.backends.sim.generation import Generation, QueueFullError
from warmgate.backends.sim.logprobs import Logprobs
from warmgate.backends.sim.replica import Replica


class Choice:
    __slots__ = ("answer", "generation", "index", "logprobs")

    def __init__(
        self,
        index: int,
        answer: Answer,
        generation: Generation,
        logprobs: Logprobs | None = None,
    ) -> None:
        self.index = index
        self.answer = answer
        self.generation = generation
        self.logprobs = logprobs  # the sampled tokens' logprobs, when the request asks


def submit(replica: Replica, choices: Sequence[Choice]) -> None:
    """Queue every choice, or none: a full queue withdraws those already queued."""
    submitted: list[Choice] = []
    try:
        for choice in choices:
            replica.submit(choice.generation)
            submitted.append(choice)
    except QueueFullError:
        for choice in submitted:
            replica.scheduler.abort(choice.generation)
        raise


def abort(replica: Replica, choices: Sequence[Choice]) -> None:
    """Free whatever is still running (a finished generation is left alone)."""
    for choice in choices:
        replica.scheduler.abort(choice.generation)


async def completed(choices: Sequence[Choice]) -> None:
    for choice in choices:
        await choice.generation.completed()


async def run_to_end(replica: Replica, choices: Sequence[Choice]) -> None:
    """Queue every choice (QueueFullError as `submit` raises it) and wait until all have
    ended; whatever is still running when the wait is cancelled is freed."""
    submit(replica, choices)
    try:
        await completed(choices)
    finally:
        abort(replica, choices)


async def progressed(choices: Sequence[Choice]) -> None:
    """Return when any unfinished choice has a new token or ended."""
    pending = [c.generation for c in choices if not c.generation.finished]
    if len(pending) <= 1:
        if pending:
            await pending[0].progressed()
        return
    waiters = [asyncio.ensure_future(generation.progressed()) for generation in pending]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def usage(
    choices: Sequence[Choice], reasoning_tokens: int, cache_report: bool, n: int = 0
) -> dict[str, object]:
    """UsageInfo as SGLang's usage_processor builds it: each prompt (and its cached tokens)
    counted once per `n` choices (all choices share one prompt when `n` is 0), completion
    tokens summed over choices, in SGLang's field order."""
    firsts = [c.generation for c in choices[:: n or len(choices)]]
    prompt = sum(generation.prompt_tokens for generation in firsts)
    completion = sum(choice.generation.generated for choice in choices)
    cached = sum(generation.cached_tokens for generation in firsts)
    details = {"cached_tokens": cached} if cache_report else None
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": details,
        "reasoning_tokens": reasoning_tokens,
        "completion_tokens_details": (
            {"reasoning_tokens": reasoning_tokens} if reasoning_tokens else None
        ),
    }


def without_nulls(fields: dict[str, object]) -> dict[str, object]:
    """`model_dump_json(exclude_none=True)`, as the completions usage chunk is dumped."""
    return {key: value for key, value in fields.items() if value is not None}
