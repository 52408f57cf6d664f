"""The Responses API as SGLang 0.5.x serves it (serving_responses.py, non-harmony path).

POST /v1/responses answers a seeded text message, or streams it with SGLang's event sequence
(`event:` lines, a `sequence_number` on every event, no `[DONE]`). Stored responses live in the
replica's in-memory store, as in SGLang: GET /v1/responses/{id} retrieves one, and
`previous_response_id` must name one this replica created. A background response stays
`in_progress` until it is retrieved (then it completes) or cancelled.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections import OrderedDict
from typing import Any

import msgspec
from aiohttp import web

from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.wire import encode
from warmgate.backends.sim.writer import Writer

STORED_RESPONSES = 1024
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}


class InputPart(msgspec.Struct, kw_only=True):
    type: str = "input_text"
    text: str | None = None


class InputItem(msgspec.Struct, kw_only=True):
    type: str | None = None
    role: str | None = None
    content: str | list[InputPart] | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str = "default"
    input: str | list[InputItem] = ""
    instructions: str | None = None
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    stream: bool = False
    store: bool = True
    background: bool = False
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True


class ResponseStore:
    """Responses this replica created (SGLang keeps them in memory, newest kept)."""

    def __init__(self, capacity: int = STORED_RESPONSES) -> None:
        self._capacity = capacity
        self._responses: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def put(self, response: dict[str, Any]) -> None:
        self._responses[response["id"]] = response
        while len(self._responses) > self._capacity:
            self._responses.popitem(last=False)

    def get(self, response_id: str) -> dict[str, Any] | None:
        return self._responses.get(response_id)


RESPONSES = web.AppKey("responses", ResponseStore)
_decoder = msgspec.json.Decoder(ResponsesRequest)


def nested_error(message: str, status: int, param: str | None = None) -> web.Response:
    """SGLang's error envelope on /v1/responses: nested, with the HTTP status as `code`."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": status}
    return intake.json_response(encode({"error": error}), status)


def _prompt_text(request: ResponsesRequest) -> str:
    if isinstance(request.input, str):
        return request.input
    texts: list[str] = []
    for item in request.input:
        if isinstance(item.content, str):
            texts.append(item.content)
        elif item.content:
            texts += [part.text or "" for part in item.content]
    return " ".join(texts)


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens}  # fmt: skip


def _response(request: ResponsesRequest, response_id: str, status: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "created_at": int(time.time()),
            "model": request.model, "output": [], "status": status, "usage": None,
            "parallel_tool_calls": request.parallel_tool_calls,
            "tool_choice": request.tool_choice, "tools": [], "error": None,
            "incomplete_details": None, "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "previous_response_id": request.previous_response_id, "reasoning": None,
            "store": request.store, "temperature": request.temperature,
            "text": {"format": {"type": "text"}}, "top_p": request.top_p, "truncation": None,
            "user": None, "metadata": request.metadata}  # fmt: skip


def _message(message_id: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": message_id, "type": "message", "role": "assistant", "status": status,
            "content": content if text or status == "completed" else []}  # fmt: skip


async def create(request: web.Request) -> web.StreamResponse:
    replica = intake.replica_of(request)
    store = request.app[RESPONSES]
    try:
        body = await intake.read_body(request, replica)
        asked: ResponsesRequest = intake.decode(_decoder, body, "ResponsesRequest")
        intake.check_model(asked.model, replica.config)
        await intake.pass_faults(replica)
    except SimError as error:
        return intake.error_response(error)
    previous = asked.previous_response_id
    if previous is not None and store.get(previous) is None:
        return nested_error(f"Response with id '{previous}' not found.", 404, "response_id")
    prompt = _prompt_text(asked)
    prompt_tokens = max(1, len(prompt.split()))
    writer = Writer(zlib.crc32(prompt.encode()) ^ replica.config.seed)
    budget = asked.max_output_tokens or replica.config.output_tokens_mean
    pieces = writer.words(min(budget, writer.natural_length(replica.config.output_tokens_mean)))
    response_id = f"resp_{uuid.uuid4().hex}"
    replica.telemetry.requests_received += 1
    if asked.stream:
        return await _stream(request, asked, response_id=response_id, pieces=pieces,
                             prompt_tokens=prompt_tokens, store=store)  # fmt: skip
    final = _response(asked, response_id, "in_progress" if asked.background else "completed")
    if not asked.background:
        final["output"] = [_message(f"msg_{uuid.uuid4().hex}", "".join(pieces), "completed")]
        final["usage"] = _usage(prompt_tokens, len(pieces))
    else:
        final["_pending"] = {"text": "".join(pieces), "output_tokens": len(pieces),
                             "input_tokens": prompt_tokens}  # fmt: skip
    if asked.store:
        store.put(final)
    return intake.json_response(encode(_public(final)))


def _public(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if not key.startswith("_")}


async def _stream(request: web.Request, asked: ResponsesRequest, *, response_id: str,
                  pieces: list[str], prompt_tokens: int, store: ResponseStore,
                  ) -> web.StreamResponse:  # fmt: skip
    response = web.StreamResponse(headers=SSE_HEADERS)
    response.enable_chunked_encoding()
    await response.prepare(request)
    sequence = 0

    async def send(kind: str, **fields: Any) -> None:
        nonlocal sequence
        payload = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        await response.write(b"event: " + kind.encode() + b"\ndata: " + encode(payload) + b"\n\n")

    initial = _response(asked, response_id, "in_progress")
    await send("response.created", response=initial)
    await send("response.in_progress", response=initial)
    message_id = f"msg_{uuid.uuid4().hex}"
    common = {"item_id": message_id, "output_index": 0, "content_index": 0}
    await send("response.output_item.added", output_index=0,
               item=_message(message_id, "", "in_progress"))  # fmt: skip
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    await send("response.content_part.added", part=part, **common)
    cut = intake.replica_of(request).faults.cut_stream_after_tokens
    for index, piece in enumerate(pieces):
        if cut is not None and index >= cut:
            transport = request.transport
            if transport is not None:
                transport.abort()
            return response
        await send("response.output_text.delta", delta=piece, logprobs=[], **common)
    text = "".join(pieces)
    await send("response.output_text.done", text=text, logprobs=[], **common)
    await send("response.content_part.done", part={**part, "text": text}, **common)
    message = _message(message_id, text, "completed")
    await send("response.output_item.done", output_index=0, item=message)
    final = {**initial, "status": "completed", "output": [message],
             "usage": _usage(prompt_tokens, len(pieces))}  # fmt: skip
    if asked.store:
        store.put(final)
    await send("response.completed", response=final)
    return response


def _finish_background(response: dict[str, Any]) -> None:
    pending = response.pop("_pending", None)
    if pending is not None and response["status"] == "in_progress":
        response["status"] = "completed"
        response["output"] = [_message(f"msg_{uuid.uuid4().hex}", pending["text"], "completed")]
        response["usage"] = _usage(pending["input_tokens"], pending["output_tokens"])


async def retrieve(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    stored = request.app[RESPONSES].get(response_id)
    if not response_id.startswith("resp"):
        return nested_error(f"Invalid 'response_id': '{response_id}'. Expected an ID that "
                            "begins with 'resp'.", 400, "response_id")  # fmt: skip
    if stored is None:
        return nested_error(f"Response with id '{response_id}' not found.", 404, "response_id")
    _finish_background(stored)
    return intake.json_response(encode(_public(stored)))


async def cancel(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    stored = request.app[RESPONSES].get(response_id)
    if stored is None:
        return nested_error(f"Response with id '{response_id}' not found.", 404, "response_id")
    if "_pending" not in stored and stored["status"] != "in_progress":
        return nested_error("Cannot cancel a synchronous response.", 400, "response_id")
    stored.pop("_pending", None)
    stored["status"] = "cancelled"
    return intake.json_response(encode(_public(stored)))
