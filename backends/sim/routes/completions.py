"""POST /v1/completions, answered with serving_completions.py's bytes.

A stream has one event per scheduler output, the last carrying `finish_reason` (no separate
finish event, unlike chat), then the usage event (dumped without nulls) when asked, then [DONE].
A batch of prompts streams the events of all its choices interleaved, each with its index.
"""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from warmgate.backends.sim import choices
from warmgate.backends.sim.answer import CONTENT
from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.constrained.constraint import ConstraintError
from warmgate.backends.sim.errors import SimError, stream_error_event
from warmgate.backends.sim.generation import QueueFullError
from warmgate.backends.sim.network import Outlet
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.routes.chat_stream import (
    DONE,
    STREAM_FAULT,
    refused,
    sse_response,
    write_error_event,
)
from warmgate.backends.sim.routes.completion_plan import CompletionPlan, output_constraint, plan
from warmgate.backends.sim.sampling import check_sampling
from warmgate.backends.sim.wire import CompletionRequest, completion_decoder, encode, sampling_of


async def completions(request: web.Request) -> web.StreamResponse:
    replica = intake.replica_of(request)
    try:
        body = await intake.read_body(request, replica)
        completion: CompletionRequest = intake.decode(completion_decoder, body, "CompletionRequest")
        intake.check_model(completion.model, replica.config)
        rid = completion.rid or uuid.uuid4().hex
        try:
            planned = plan(completion, replica, rid, output_constraint(completion))
        except ConstraintError as failed:
            if not completion.stream:
                raise SimError(str(failed)) from None
            return await refused(request, replica, str(failed))
        check_sampling(sampling_of(completion))
        await intake.pass_faults(replica)
    except SimError as error:
        return intake.error_response(error)
    head = encode(
        {
            "id": rid,
            "object": "text_completion",
            "created": int(time.time()),
            "model": completion.model,
        }
    )[:-1]
    if completion.stream:
        return await _stream(request, replica, completion, planned, head=head)
    generations = planned.choices
    try:
        await choices.run_to_end(replica, generations)
    except QueueFullError as full:
        return intake.error_response(SimError(str(full), 503, "503"))
    n = completion.n
    body_choices = []
    for choice in generations:
        reason, matched = _finish(choice)
        upto = choice.generation.generated
        text = planned.echoes[choice.index // n] + choice.answer.text(CONTENT, upto)
        body_choices.append(
            {
                "index": choice.index,
                "text": text,
                "logprobs": _logprobs(planned, choice, 0, upto, n),
                "finish_reason": reason,
                "matched_stop": matched,
            }
        )
    fields = choices.usage(generations, 0, replica.config.enable_cache_report, n)
    tail = {"choices": body_choices, "usage": fields, "metadata": {"weight_version": "default"}}
    return intake.json_response(head + b"," + encode(tail)[1:])


def _logprobs(
    planned: CompletionPlan, choice: Choice, start: int, stop: int, n: int
) -> dict[str, object] | None:
    """LogProbs of tokens [start, stop), the echoed prompt's first when `start` is 0."""
    if choice.logprobs is None:
        return None
    before = planned.prompt_logprobs[choice.index // n] if start == 0 else None
    if stop <= start and before is None:
        return None
    return choice.logprobs.completion(start, min(stop, len(choice.logprobs)), before)


def _finish(choice: Choice) -> tuple[str, int | str | None]:
    reason = choice.generation.finish_reason or "abort"
    return reason, choice.answer.matched if reason == "stop" else None


async def _stream(
    request: web.Request,
    replica: Replica,
    completion: CompletionRequest,
    planned: CompletionPlan,
    *,
    head: bytes,
) -> web.StreamResponse:
    outlet = replica.outlet(request, sse_response())
    generations = planned.choices
    for choice in generations:
        choice.generation.streaming = True
    try:
        try:
            choices.submit(replica, generations)
        except QueueFullError as full:
            await write_error_event(outlet, str(full), 503)
            return outlet.response
        await _relay(outlet, replica, completion, planned, head)
        await outlet.drain()
        return outlet.response
    finally:
        choices.abort(replica, generations)
        await outlet.close()


async def _relay(
    outlet: Outlet,
    replica: Replica,
    completion: CompletionRequest,
    planned: CompletionPlan,
    head: bytes,
) -> None:
    generations, n = planned.choices, completion.n
    while not any(c.generation.generated or c.generation.finished for c in generations):
        await choices.progressed(generations)
    await outlet.prepare()
    reported, closed = [0] * len(generations), [False] * len(generations)
    cut = replica.faults.cut_stream_after_tokens
    fail = replica.faults.error_stream_after_tokens
    while True:
        events = bytearray()
        for slot, choice in enumerate(generations):
            generation, upto = choice.generation, choice.generation.generated
            if closed[slot] or (upto == reported[slot] and not generation.finished):
                continue
            start = reported[slot]
            text = "".join(piece[1] for piece in choice.answer.pieces[start:upto])
            if start == 0:
                text = planned.echoes[choice.index // n] + text
            logprobs = _logprobs(planned, choice, start, upto, n)
            events += _event(head, choice, text, logprobs)
            reported[slot], closed[slot] = upto, generation.finished
        await outlet.write(bytes(events))
        if cut is not None and max(reported) >= cut:
            await outlet.cut()
            return
        if fail is not None and max(reported) >= fail:
            await outlet.write(stream_error_event(STREAM_FAULT, 500))
            break
        if all(choice.generation.finished for choice in generations):
            break
        await choices.progressed(generations)
    options = completion.stream_options
    if replica.config.stream_include_usage_default or (options and options.include_usage):
        fields = choices.without_nulls(
            choices.usage(generations, 0, replica.config.enable_cache_report, n)
        )
        usage_event = b',"choices":[],"usage":' + encode(fields) + b"}\n\n"
        await outlet.write(b"data: " + head + usage_event)
    await outlet.write(DONE)


def _event(head: bytes, choice: Choice, text: str, logprobs: dict[str, object] | None) -> bytes:
    """One CompletionStreamResponse event; the last one of a choice carries its finish."""
    generation = choice.generation
    reason, matched = _finish(choice) if generation.finished else (None, None)
    body = {
        "index": choice.index,
        "text": text,
        "logprobs": logprobs,
        "finish_reason": reason,
        "matched_stop": matched,
    }
    return b"data: " + head + b',"choices":[' + encode(body) + b'],"usage":null}\n\n'
