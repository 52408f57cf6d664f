"""POST /v1/embeddings: seeded unit vectors, float or little-endian float32 base64.

A real SGLang server embeds only when launched with --is-embedding; the simulator serves both
families at once so one replica backs every test.
"""

from __future__ import annotations

import base64
import math
import random
import struct
import uuid
import zlib

from aiohttp import web

from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.generation import Generation, QueueFullError
from warmgate.backends.sim.prompt import render_ids, render_text
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.wire import EmbeddingRequest, embedding_decoder, encode


async def embeddings(request: web.Request) -> web.Response:
    replica = intake.replica_of(request)
    config = replica.config
    try:
        body = await intake.read_body(request, replica)
        embed: EmbeddingRequest = intake.decode(embedding_decoder, body, "EmbeddingRequest")
        if embed.encoding_format not in ("float", "base64"):
            raise SimError(
                f"encoding_format must be either 'float' or 'base64', got {embed.encoding_format!r}"
            )
        intake.check_model(embed.model, config)
        texts = _inputs(embed.input)
        await intake.pass_faults(replica)
    except SimError as error:
        return intake.error_response(error)
    data = []
    prompt_tokens = 0
    for index, text in enumerate(texts):
        prompt = (
            render_text(text, replica.tokenizer, config.seed, None)
            if isinstance(text, str)
            else render_ids(text, replica.tokenizer, config.seed)
        )
        try:
            intake.max_new_tokens(0, len(prompt), config)
        except SimError as error:
            return intake.error_response(error)
        generation = Generation(
            uuid.uuid4().hex,
            prompt_tokens=len(prompt),
            block_hashes=prompt.block_hashes,
            output_tokens=1,
            stop_reason="stop",
        )
        try:
            replica.submit(generation)
        except QueueFullError as full:
            return intake.error_response(SimError(str(full), 503, "503"))
        try:
            await generation.completed()
        finally:
            replica.scheduler.abort(generation)
        prompt_tokens += len(prompt)
        vector = _vector(str(text), embed.dimensions or config.embedding_dim)
        data.append(
            {
                "embedding": _serialize(vector, embed.encoding_format),
                "index": index,
                "object": "embedding",
            }
        )
    usage = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens,
        "completion_tokens": 0,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
        "completion_tokens_details": None,
    }
    body_out = {"data": data, "model": config.model, "object": "list", "usage": usage}
    return intake.json_response(encode(body_out))


def _inputs(raw: str | list[object]) -> list[str | list[int]]:
    if isinstance(raw, str):
        return [raw]
    if raw and all(isinstance(item, str) for item in raw):
        return [str(item) for item in raw]
    if raw and all(isinstance(item, int) for item in raw):
        return [[int(str(item)) for item in raw]]
    if raw and all(isinstance(item, list) and item for item in raw):
        return [[int(str(token)) for token in item] for item in raw if isinstance(item, list)]
    raise SimError("Input must be a string, a list of strings, or token ids.")


def _vector(text: str, dimensions: int) -> list[float]:
    rng = random.Random(zlib.crc32(text.encode()))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _serialize(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
