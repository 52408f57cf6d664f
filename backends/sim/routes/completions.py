"""POST /v1/completions, answered with serving_completions.py's bytes.

A stream has one event per scheduler output, the last carrying `finish_reason` (no separate
finish event, unlike chat), then the usage event (dumped without nulls) when asked, then [DONE].
"""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from warmgate.backends.sim import choices
from warmgate.backends.sim.answer import CONTENT, plan_text, stop_strings
from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.errors import SimError, stream_error_event
from warmgate.backends.sim.generation import Generation, QueueFullError
from warmgate.backends.sim.prompt import Prompt, render_ids, render_text
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.routes.chat import MAX_CHOICES
from warmgate.backends.sim.routes.chat_stream import DONE, SSE_HEADERS, STREAM_FAULT, cut_connection
from warmgate.backends.sim.sampling import check_sampling
from warmgate.backends.sim.wire import CompletionRequest, completion_decoder, encode, sampling_of
from warmgate.backends.sim.writer import Writer


async def completions(request: web.Request) -> web.StreamResponse:
    replica = intake.replica_of(request)
    try:
        body = await intake.read_body(request, replica)
        completion: CompletionRequest = intake.decode(completion_decoder, body, "CompletionRequest")
        intake.check_model(completion.model, replica.config)
        rid = completion.rid or uuid.uuid4().hex
        planned, echo = _plan(completion, replica, rid)
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
        return await _stream(request, replica, completion, planned, head=head, echo=echo)
    try:
        choices.submit(replica, planned)
    except QueueFullError as full:
        return intake.error_response(SimError(str(full), 503, "503"))
    try:
        await choices.completed(planned)
    finally:
        choices.abort(replica, planned)
    body_choices = []
    for choice in planned:
        reason, matched = _finish(choice)
        text = echo + choice.answer.text(CONTENT, choice.generation.generated)
        body_choices.append(
            {
                "index": choice.index,
                "text": text,
                "logprobs": None,
                "finish_reason": reason,
                "matched_stop": matched,
            }
        )
    fields = choices.usage(planned, 0, replica.config.enable_cache_report)
    tail = {"choices": body_choices, "usage": fields, "metadata": {"weight_version": "default"}}
    return intake.json_response(head + b"," + encode(tail)[1:])


def _plan(completion: CompletionRequest, replica: Replica, rid: str) -> tuple[list[Choice], str]:
    prompt, echo = _prompt(completion, replica)
    config = replica.config
    if not 1 <= completion.n <= MAX_CHOICES:
        raise SimError(f"n must be between 1 and {MAX_CHOICES}.")
    budget = intake.max_new_tokens(completion.max_tokens, len(prompt), config)
    planned = []
    for index in range(completion.n):
        answer = plan_text(
            Writer(prompt.seed + index),
            config.output_tokens_mean,
            budget,
            completion.ignore_eos,
            stop_strings(completion.stop),
        )
        generation = Generation(
            rid if completion.n == 1 else f"{rid}_{index}",
            prompt_tokens=len(prompt),
            block_hashes=prompt.block_hashes,
            output_tokens=answer.output_tokens,
            stop_reason=answer.stop_reason,
        )
        planned.append(Choice(index, answer, generation))
    return planned, echo


def _prompt(completion: CompletionRequest, replica: Replica) -> tuple[Prompt, str]:
    raw, config = completion.prompt, replica.config
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], (str, list)):
        raw = raw[0]
    if isinstance(raw, str):
        prompt = render_text(raw, replica.tokenizer, config.seed, completion.seed)
        return prompt, raw if completion.echo else ""
    if raw and all(isinstance(token, int) for token in raw):
        return render_ids(raw, replica.tokenizer, config.seed), ""
    raise SimError("The simulator takes one prompt per request: a string or a list of token ids.")


def _finish(choice: Choice) -> tuple[str, int | str | None]:
    reason = choice.generation.finish_reason or "abort"
    return reason, choice.answer.matched if reason == "stop" else None


async def _stream(
    request: web.Request,
    replica: Replica,
    completion: CompletionRequest,
    planned: list[Choice],
    *,
    head: bytes,
    echo: str,
) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    response.enable_chunked_encoding()
    for choice in planned:
        choice.generation.streaming = True
    try:
        choices.submit(replica, planned)
    except QueueFullError as full:
        await response.prepare(request)
        await response.write(stream_error_event(str(full), 503) + DONE)
        return response
    try:
        while not any(c.generation.generated or c.generation.finished for c in planned):
            await choices.progressed(planned)
        await response.prepare(request)
        reported, closed = [0] * len(planned), [False] * len(planned)
        cut = replica.faults.cut_stream_after_tokens
        fail = replica.faults.error_stream_after_tokens
        while True:
            events = bytearray()
            for slot, choice in enumerate(planned):
                generation, upto = choice.generation, choice.generation.generated
                if closed[slot] or (upto == reported[slot] and not generation.finished):
                    continue
                text = "".join(piece[1] for piece in choice.answer.pieces[reported[slot] : upto])
                events += _event(head, choice, (echo if reported[slot] == 0 else "") + text)
                reported[slot], closed[slot] = upto, generation.finished
            await response.write(bytes(events))
            if cut is not None and max(reported) >= cut:
                cut_connection(request)
                return response
            if fail is not None and max(reported) >= fail:
                await response.write(stream_error_event(STREAM_FAULT, 500))
                break
            if all(choice.generation.finished for choice in planned):
                break
            await choices.progressed(planned)
        options = completion.stream_options
        if replica.config.stream_include_usage_default or (options and options.include_usage):
            fields = choices.without_nulls(
                choices.usage(planned, 0, replica.config.enable_cache_report)
            )
            usage_event = b',"choices":[],"usage":' + encode(fields) + b"}\n\n"
            await response.write(b"data: " + head + usage_event)
        await response.write(DONE)
        return response
    finally:
        choices.abort(replica, planned)


def _event(head: bytes, choice: Choice, text: str) -> bytes:
    """One CompletionStreamResponse event; the last one of a choice carries its finish."""
    generation = choice.generation
    reason, matched = _finish(choice) if generation.finished else (None, None)
    body = {
        "index": choice.index,
        "text": text,
        "logprobs": None,
        "finish_reason": reason,
        "matched_stop": matched,
    }
    return b"data: " + head + b',"choices":[' + encode(body) + b'],"usage":null}\n\n'
