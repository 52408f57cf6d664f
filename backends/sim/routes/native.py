"""POST /generate: SGLang's native API (text or input_ids in, text and meta_info out).

A stream sends cumulative `text` in every event (SGLang's default without
--incremental-streaming-output), then `data: [DONE]`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from warmgate.backends.sim.answer import Answer, plan_text, stop_strings
from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.generation import Generation, QueueFullError
from warmgate.backends.sim.prompt import render_ids, render_text
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.routes.chat_stream import DONE, sse_response
from warmgate.backends.sim.sampling import check_sampling
from warmgate.backends.sim.wire import GenerateRequest, encode, generate_decoder
from warmgate.backends.sim.writer import Writer


async def generate(request: web.Request) -> web.StreamResponse:
    replica = intake.replica_of(request)
    config = replica.config
    try:
        body = await intake.read_body(request, replica, require_json=False)
        native: GenerateRequest = intake.decode(generate_decoder, body, "GenerateReqInput")
        params = native.sampling_params or {}
        if isinstance(native.text, str):
            prompt = render_text(native.text, replica.tokenizer, config.seed, None)
        elif native.input_ids and all(isinstance(i, int) for i in native.input_ids):
            prompt = render_ids(native.input_ids, replica.tokenizer, config.seed)
        else:
            raise SimError("The simulator takes one prompt: `text` or a flat `input_ids` list.")
        requested = params.get("max_new_tokens", 128)
        check_sampling(params)
        budget = intake.max_new_tokens(int(requested), len(prompt), config)
        answer = plan_text(
            Writer(prompt.seed),
            config.output_tokens_mean,
            budget,
            bool(params.get("ignore_eos", False)),
            stop_strings(params.get("stop")),
        )
        generation = Generation(
            native.rid or uuid.uuid4().hex,
            prompt_tokens=len(prompt),
            block_hashes=prompt.block_hashes,
            output_tokens=answer.output_tokens,
            stop_reason=answer.stop_reason,
        )
        await intake.pass_faults(replica)
        generation.streaming = native.stream
        replica.submit(generation)
    except SimError as error:
        return _error(error.message, error.status)
    except QueueFullError as full:
        return _error(str(full), 503)
    try:
        if not native.stream:
            await generation.completed()
            return intake.json_response(encode(_output(answer, generation, replica)))
        return await _stream(request, answer, generation, replica)
    finally:
        replica.scheduler.abort(generation)


def _error(message: str, status: int) -> web.Response:
    """http_server._create_error_response: `{"error": {"message": ...}}`."""
    return intake.json_response(encode({"error": {"message": message}}), status)


def _output(answer: Answer, generation: Generation, replica: Replica) -> dict[str, Any]:
    upto = generation.generated
    reason: dict[str, Any] | None = None
    if generation.finish_reason == "stop":
        reason = {"type": "stop", "matched": answer.matched}
    elif generation.finish_reason == "length":
        reason = {"type": "length", "length": upto}
    elif generation.finish_reason is not None:
        reason = {"type": "abort", "message": "Abort before prefill"}
    meta = {
        "id": generation.rid,
        "finish_reason": reason,
        "prompt_tokens": generation.prompt_tokens,
        "weight_version": "default",
        "completion_tokens": upto,
        "cached_tokens": generation.cached_tokens,
        "e2e_latency": generation.last_token_at - generation.arrived_at,
    }
    text = "".join(piece[1] for piece in answer.pieces[:upto])
    return {"text": text, "output_ids": list(range(upto)), "meta_info": meta}


async def _stream(
    request: web.Request, answer: Answer, generation: Generation, replica: Replica
) -> web.StreamResponse:
    outlet = replica.outlet(request, sse_response())
    try:
        await outlet.prepare()
        while True:
            if generation.generated or generation.finished:
                event = encode(_output(answer, generation, replica))
                await outlet.write(b"data: " + event + b"\n\n")
            if generation.finished:
                break
            await generation.progressed()
        await outlet.write(DONE)
        await outlet.drain()
    finally:
        await outlet.close()
    return outlet.response
