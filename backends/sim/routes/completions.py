"""POST /v1/completions, answered with serving_completions.py's bytes.

A stream has one event per scheduler output, the last carrying `finish_reason` (no separate
finish event, unlike chat), then the usage event (dumped without nulls) when asked, then [DONE].
"""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from backends.sim.answer import CONTENT, Answer, plan_text
from backends.sim.errors import SimError, stream_error_event
from backends.sim.generation import Generation, QueueFullError
from backends.sim.prompt import Prompt, render_ids, render_text
from backends.sim.replica import Replica
from backends.sim.routes import intake
from backends.sim.routes.chat_stream import DONE, SSE_HEADERS
from backends.sim.usage import usage, without_nulls
from backends.sim.wire import CompletionRequest, completion_decoder, encode
from backends.sim.writer import EOS_TOKEN_ID, Writer


async def completions(request: web.Request) -> web.StreamResponse:
    replica = intake.replica_of(request)
    try:
        body = await intake.read_body(request, replica)
        completion: CompletionRequest = intake.decode(completion_decoder, body, "CompletionRequest")
        intake.check_model(completion.model, replica.config)
        prompt, echo = _prompt(completion, replica)
        budget = intake.max_new_tokens(completion.max_tokens, len(prompt), replica.config)
        answer = plan_text(
            Writer(prompt.seed), replica.config.output_tokens_mean, budget, completion.ignore_eos
        )
        rid = completion.rid or uuid.uuid4().hex
        generation = Generation(
            rid,
            prompt_tokens=len(prompt),
            block_hashes=prompt.block_hashes,
            output_tokens=answer.output_tokens,
            stop_reason=answer.stop_reason,
        )
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
        return await _stream(request, replica, completion, answer, generation, head=head, echo=echo)
    try:
        replica.submit(generation)
    except QueueFullError as full:
        return intake.error_response(SimError(str(full), 503, "503"))
    try:
        await generation.completed()
    finally:
        replica.scheduler.abort(generation)
    reason, matched = _finish(generation)
    choice = {
        "index": 0,
        "text": echo + answer.text(CONTENT, generation.generated),
        "logprobs": None,
        "finish_reason": reason,
        "matched_stop": matched,
    }
    fields = usage(generation, 0, replica.config.enable_cache_report)
    tail = {"choices": [choice], "usage": fields, "metadata": {"weight_version": "default"}}
    return intake.json_response(head + b"," + encode(tail)[1:])


def _prompt(completion: CompletionRequest, replica: Replica) -> tuple[Prompt, str]:
    raw, config = completion.prompt, replica.config
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], (str, list)):
        raw = raw[0]
    if completion.n != 1:
        raise SimError("The simulator answers one choice per request (n must be 1).")
    if isinstance(raw, str):
        prompt = render_text(raw, replica.tokenizer, config.seed, completion.seed)
        return prompt, raw if completion.echo else ""
    if raw and all(isinstance(token, int) for token in raw):
        return render_ids(raw, replica.tokenizer, config.seed), ""
    raise SimError("The simulator takes one prompt per request: a string or a list of token ids.")


def _finish(generation: Generation) -> tuple[str, int | None]:
    reason = generation.finish_reason or "abort"
    return reason, EOS_TOKEN_ID if reason == "stop" else None


async def _stream(
    request: web.Request,
    replica: Replica,
    completion: CompletionRequest,
    answer: Answer,
    generation: Generation,
    *,
    head: bytes,
    echo: str,
) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    response.enable_chunked_encoding()
    try:
        replica.submit(generation)
    except QueueFullError as full:
        await response.prepare(request)
        await response.write(stream_error_event(str(full), 503) + DONE)
        return response
    try:
        while generation.generated == 0 and not generation.finished:
            await generation.progressed()
        await response.prepare(request)
        sent = 0
        cut = replica.faults.cut_stream_after_tokens
        while True:
            upto = generation.generated
            text = echo + "".join(piece[1] for piece in answer.pieces[sent:upto])
            echo = ""
            reason, matched = _finish(generation) if generation.finished else (None, None)
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": reason,
                "matched_stop": matched,
            }
            event = b"data: " + head + b',"choices":[' + encode(choice) + b'],"usage":null}\n\n'
            await response.write(event)
            if cut is not None and upto >= cut and request.transport is not None:
                request.transport.abort()
                raise ConnectionResetError("stream cut by fault injection")
            sent = upto
            if generation.finished:
                break
            await generation.progressed()
        options = completion.stream_options
        if replica.config.stream_include_usage_default or (options and options.include_usage):
            fields = without_nulls(usage(generation, 0, replica.config.enable_cache_report))
            await response.write(
                b"data: " + head + b',"choices":[],"usage":' + encode(fields) + b"}\n\n"
            )
        await response.write(DONE)
        return response
    finally:
        replica.scheduler.abort(generation)
