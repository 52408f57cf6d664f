"""A streamed response, event for event as serving_responses' non-harmony stream generator
writes it: `event:` lines, a `sequence_number` on every event, no [DONE]. Text arrives as
output_text deltas, a function call as an output item whose arguments arrive as deltas; the
last event is `response.completed`, or `response.incomplete` when the token limit was hit."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from warmgate.backends.sim import choices
from warmgate.backends.sim.answer import CONTENT, TOOL_ARGS, TOOL_NAME
from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.errors import stream_error_event
from warmgate.backends.sim.generation import QueueFullError
from warmgate.backends.sim.network import Outlet
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.response_objects import (
    ResponsesRequest,
    final_response,
    function_call_item,
    message_item,
    outputs_as_messages,
    response_document,
)
from warmgate.backends.sim.response_store import ResponseStore
from warmgate.backends.sim.routes.chat_stream import sse_response
from warmgate.backends.sim.wire import ChatMessage, encode


class _Events:
    def __init__(self, outlet: Outlet) -> None:
        self.outlet = outlet
        self.sequence = 0
        self.pending = bytearray()

    def add(self, kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        self.pending += b"event: " + kind.encode() + b"\ndata: " + encode(payload) + b"\n\n"

    async def flush(self) -> None:
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            await self.outlet.write(data)


async def stream_response(  # noqa: PLR0915 - the event sequence reads best in one place
    request: web.Request,
    replica: Replica,
    asked: ResponsesRequest,
    choice: Choice,
    *,
    store: ResponseStore,
    messages: list[ChatMessage],
) -> web.StreamResponse:
    outlet = replica.outlet(request, sse_response())
    generation, answer = choice.generation, choice.answer
    generation.streaming = True
    replica.telemetry.requests_received += 1
    try:
        choices.submit(replica, [choice])
    except QueueFullError as full:
        await outlet.prepare()
        await outlet.write(stream_error_event(str(full), 503))
        await outlet.drain()
        return outlet.response
    try:
        await outlet.prepare()
        events = _Events(outlet)
        initial = response_document(asked, generation.rid, "in_progress", [], None)
        events.add("response.created", response=initial)
        events.add("response.in_progress", response=initial)
        output_index = -1
        item: dict[str, Any] | None = None
        text = ""
        sent = 0
        cut = replica.faults.cut_stream_after_tokens
        while True:
            upto = min(generation.generated, len(answer.pieces))
            for kind, piece, call in answer.pieces[sent:upto]:
                if kind == CONTENT:
                    if item is None:
                        output_index += 1
                        item = message_item("", status="in_progress")
                        events.add("response.output_item.added", output_index=output_index,
                                   item=item)  # fmt: skip
                        events.add("response.content_part.added", item_id=item["id"],
                                   output_index=output_index, content_index=0,
                                   part=_text_part(""))  # fmt: skip
                    text += piece
                    events.add("response.output_text.delta", content_index=0, delta=piece,
                               item_id=item["id"], logprobs=[],
                               output_index=output_index)  # fmt: skip
                elif kind == TOOL_NAME:
                    output_index += 1
                    item = function_call_item(answer.calls[call].name, "", status="in_progress")
                    events.add("response.output_item.added", output_index=output_index,
                               item=item)  # fmt: skip
                elif kind == TOOL_ARGS and item is not None:
                    events.add("response.function_call_arguments.delta", item_id=item["id"],
                               output_index=output_index, delta=piece)  # fmt: skip
            sent = upto
            await events.flush()
            if cut is not None and sent >= cut and not generation.finished:
                await outlet.drain()
                if request.transport is not None:
                    request.transport.abort()
                return outlet.response
            if generation.finished:
                break
            await generation.progressed()
        final = final_response(asked, choice, initial["created_at"])
        closed = _close(events, item, text, output_index, final)
        final["output"] = closed
        if asked.store:
            store.put(final, messages + outputs_as_messages(closed))
        events.add(f"response.{final['status']}", response=final)
        await events.flush()
        await outlet.drain()
        return outlet.response
    finally:
        choices.abort(replica, [choice])
        await outlet.close()


def _close(
    events: _Events,
    item: dict[str, Any] | None,
    text: str,
    output_index: int,
    final: dict[str, Any],
) -> list[dict[str, Any]]:
    """The done events of the open item; the output, with the ids the stream announced."""
    if item is None:
        return list(final["output"])
    if item["type"] == "message":
        part = _text_part(text)
        events.add("response.output_text.done", content_index=0, item_id=item["id"],
                   logprobs=[], output_index=output_index, text=text)  # fmt: skip
        events.add("response.content_part.done", content_index=0, item_id=item["id"],
                   output_index=output_index, part=part)  # fmt: skip
        done = {**item, "status": "completed", "content": [part]}
    else:
        calls = [o for o in final["output"] if o["type"] == "function_call"]
        arguments = calls[-1]["arguments"] if calls else ""
        events.add("response.function_call_arguments.done", item_id=item["id"],
                   output_index=output_index, arguments=arguments, name=item["name"])  # fmt: skip
        done = {**item, "arguments": arguments, "status": "completed" if calls else "incomplete"}
    events.add("response.output_item.done", output_index=output_index, item=done)
    return [done]


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
