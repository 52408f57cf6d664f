"""A streamed chat completion, event for event as serving_chat._generate_chat_stream writes it.

Status and headers go out only once the first token exists (SGLang awaits the generator's first
chunk before it creates the StreamingResponse); a queue-full abort arrives in-band on a 200.
Tokens the scheduler produced while the client was being written to are coalesced into one
event per kind, as SGLang coalesces outputs it could not send one by one.
"""

from __future__ import annotations

import time

from aiohttp import web

from backends.sim.answer import CONTENT, REASONING, TOOL_ARGS, TOOL_NAME, Answer
from backends.sim.errors import stream_error_event
from backends.sim.generation import Generation, QueueFullError
from backends.sim.replica import Replica
from backends.sim.usage import usage
from backends.sim.wire import ChatCompletionRequest, encode
from backends.sim.writer import EOS_TOKEN_ID

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}
_TAIL = b',"logprobs":null,"finish_reason":null,"matched_stop":null}]}\n\n'


class ChatStream:
    def __init__(
        self,
        request: web.Request,
        replica: Replica,
        chat: ChatCompletionRequest,
        answer: Answer,
        generation: Generation,
    ) -> None:
        self.request = request
        self.replica = replica
        self.chat = chat
        self.answer = answer
        self.generation = generation
        self.created = int(time.time())
        head = {
            "id": generation.rid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": chat.model,
        }
        self._head = encode(head)[:-1]  # '{"id":..,"model":".."' without the closing brace
        self._open = b"data: " + self._head + b',"choices":[{"index":0,"delta":'

    async def run(self) -> web.StreamResponse:
        generation, replica = self.generation, self.replica
        try:
            replica.submit(generation)
        except QueueFullError as full:
            response = await self._start()
            await response.write(stream_error_event(str(full), 503) + DONE)
            return response
        try:
            while generation.generated == 0 and not generation.finished:
                await generation.progressed()
            response = await self._start()
            await self._relay(response)
            await response.write(self._closing())
            return response
        finally:
            replica.scheduler.abort(generation)

    async def _start(self) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE_HEADERS)
        response.enable_chunked_encoding()
        await response.prepare(self.request)
        return response

    async def _relay(self, response: web.StreamResponse) -> None:
        generation = self.generation
        cut = self.replica.faults.cut_stream_after_tokens
        sent = 0
        first = True
        while True:
            upto = generation.generated
            events = bytearray()
            if first:
                events += self._open + b'{"reasoning_content":null,"role":"assistant","content":""}'
                events += _TAIL
                first = False
            events += self._pieces(sent, min(upto, len(self.answer.pieces)))
            if cut is not None and upto >= cut:
                await response.write(bytes(events))
                self._cut()
                return
            if events:
                await response.write(bytes(events))
            sent = upto
            if generation.finished:
                return
            await generation.progressed()

    def _cut(self) -> None:
        """Drop the connection mid-stream (fault `cut_stream_after_tokens`)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        raise ConnectionResetError("stream cut by fault injection")

    def _pieces(self, start: int, stop: int) -> bytes:
        out = bytearray()
        pieces = self.answer.pieces
        index = start
        while index < stop:
            kind, text, call = pieces[index]
            if kind == TOOL_NAME:
                out += self._tool_event(self.answer.calls[call].id, call, text, "")
                index += 1
                continue
            end = index
            while end < stop and pieces[end][0] == kind:
                end += 1
            chunk = "".join(piece[1] for piece in pieces[index:end])
            if kind == REASONING:
                out += self._open + b'{"reasoning_content":' + encode(chunk) + b"}" + _TAIL
            elif kind == CONTENT:
                delta = b'{"reasoning_content":null,"content":' + encode(chunk) + b"}"
                out += self._open + delta + _TAIL
            elif kind == TOOL_ARGS:
                out += self._tool_event(None, call, None, chunk)
            index = end
        return bytes(out)

    def _tool_event(self, call_id: str | None, index: int, name: str | None, args: str) -> bytes:
        """A pydantic-dumped ChatCompletionStreamResponse carrying one tool-call delta."""
        call = {
            "id": call_id,
            "index": index,
            "type": "function",
            "function": {"name": name, "arguments": args},
        }
        delta = {"role": None, "content": None, "reasoning_content": None, "tool_calls": [call]}
        return self._open + encode(delta) + _TAIL[:-3] + b',"usage":null}\n\n'

    def _closing(self) -> bytes:
        """The separate finish event, the optional usage event and [DONE]."""
        generation, answer = self.generation, self.answer
        reason = generation.finish_reason or "abort"
        matched = EOS_TOKEN_ID if reason == "stop" else None
        if reason == "stop" and answer.calls:
            reason = "tool_calls"
        finish = {"reasoning_content": None}
        out = self._open + encode(finish) + b',"logprobs":null,"finish_reason":'
        out += encode(reason) + b',"matched_stop":' + encode(matched) + b"}]}\n\n"
        config = self.replica.config
        options = self.chat.stream_options
        include = config.stream_include_usage_default or bool(options and options.include_usage)
        if include:
            upto = generation.generated
            fields = usage(generation, answer.reasoning_tokens(upto), config.enable_cache_report)
            out += b"data: " + self._head + b',"choices":[],"usage":' + encode(fields) + b"}\n\n"
        return out + DONE
