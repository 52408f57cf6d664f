"""A streamed chat completion, event for event as serving_chat._generate_chat_stream writes it.

Status and headers go out only once the first token exists (SGLang awaits the generator's first
chunk before it creates the StreamingResponse); a queue-full abort arrives in-band on a 200.
Tokens the scheduler produced while the client was being written to are coalesced into one
event per kind, as SGLang coalesces outputs it could not send one by one. With `n > 1` each
choice has its own role event and its own index; the finish events follow the last token of all.
"""

from __future__ import annotations

import time

from aiohttp import web

from warmgate.backends.sim import choices
from warmgate.backends.sim.answer import CONTENT, REASONING, TOOL_ARGS, TOOL_NAME
from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.errors import stream_error_event
from warmgate.backends.sim.generation import QueueFullError
from warmgate.backends.sim.network import Outlet
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.wire import ChatCompletionRequest, encode

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}
_TAIL = b',"logprobs":null,"finish_reason":null,"matched_stop":null}]}\n\n'
_BARE_DELTA = b'{"reasoning_content":null}'  # sse_utils.StreamDelta with nothing but logprobs
_NULL_LP = b',"logprobs":null'
FINISHED, CUT, FAILED = "finished", "cut", "failed"
STREAM_FAULT = "Internal server error: simulated fault during generation"


def sse_response() -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    response.enable_chunked_encoding()
    return response


async def write_error_event(outlet: Outlet, message: str, status: int) -> None:
    """The whole answer of a stream that fails before its first token: 200, the error event,
    [DONE] (serving_chat and serving_completions answer a failure in-band once streaming)."""
    await outlet.prepare()
    await outlet.write(stream_error_event(message, status) + DONE)
    await outlet.drain()


async def refused(request: web.Request, replica: Replica, message: str) -> web.StreamResponse:
    """A stream the scheduler aborted before any token (a grammar that does not compile): the
    abort becomes an in-band 400 error."""
    outlet = replica.outlet(request, sse_response())
    try:
        await write_error_event(outlet, message, 400)
    finally:
        await outlet.close()
    return outlet.response


class ChatStream:
    def __init__(
        self,
        request: web.Request,
        replica: Replica,
        chat: ChatCompletionRequest,
        rid: str,
        planned: list[Choice],
    ) -> None:
        self.request = request
        self.replica = replica
        self.chat = chat
        self.planned = planned
        head = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": chat.model,
        }
        self._head = encode(head)[:-1]  # '{"id":..,"model":".."' without the closing brace
        self._opens = [
            b"data: " + self._head + b',"choices":[{"index":%d,"delta":' % choice.index
            for choice in planned
        ]
        config = replica.config
        # serving_chat flushes logprobs that found no content event in a chunk of their own
        # only when a reasoning or tool-call parser runs; tool-call parsing sends them apart.
        self._parsers = bool(config.reasoning_parser or config.tool_call_parser)
        self._tools_parsed = bool(
            config.tool_call_parser and chat.tools and chat.tool_choice != "none"
        )

    async def run(self) -> web.StreamResponse:
        replica, planned = self.replica, self.planned
        for choice in planned:
            choice.generation.streaming = True
        outlet = self._outlet()
        try:
            try:
                choices.submit(replica, planned)
            except QueueFullError as full:
                await write_error_event(outlet, str(full), 503)
                return outlet.response
            while not any(c.generation.generated or c.generation.finished for c in planned):
                await choices.progressed(planned)
            await outlet.prepare()
            ending = await self._relay(outlet)
            if ending == FINISHED:
                await outlet.write(self._closing())
            elif ending == FAILED:
                # serving_chat: the error event, no finish event, the usage event if asked.
                await outlet.write(stream_error_event(STREAM_FAULT, 500) + self._usage() + DONE)
            await outlet.drain()
            return outlet.response
        finally:
            choices.abort(replica, planned)
            await outlet.close()

    def _outlet(self) -> Outlet:
        return self.replica.outlet(self.request, sse_response())

    async def _relay(self, outlet: Outlet) -> str:
        """Write every token as it comes; say how the stream ends (FINISHED, CUT or FAILED)."""
        planned = self.planned
        cut = self.replica.faults.cut_stream_after_tokens
        fail = self.replica.faults.error_stream_after_tokens
        sent = [0] * len(planned)
        opened = [False] * len(planned)
        while True:
            events = bytearray()
            for slot, choice in enumerate(planned):
                generation = choice.generation
                upto = generation.generated
                if not opened[slot] and (upto or generation.finished):
                    opened[slot] = True
                    role = b'{"reasoning_content":null,"role":"assistant","content":""}'
                    events += self._opens[slot] + role + _TAIL
                stop = min(upto, len(choice.answer.pieces))
                tail = self._tail(choice, stop)
                logprobs = self._logprobs(choice, sent[slot], upto)
                if logprobs is None:
                    events += self._pieces(slot, sent[slot], stop, tail, tail)
                elif self._tools_parsed:  # the tool parser's events carry none: a chunk of its own
                    events += self._pieces(slot, sent[slot], stop, tail, tail)
                    events += self._opens[slot] + _BARE_DELTA + logprobs + tail[len(_NULL_LP) :]
                else:
                    first = logprobs + tail[len(_NULL_LP) :]
                    written = self._pieces(slot, sent[slot], stop, first, tail)
                    if written or not self._parsers:
                        events += written
                    else:  # nothing to attach to (the end-of-turn token): flushed alone
                        events += self._opens[slot] + _BARE_DELTA + first
                sent[slot] = upto
            if events:
                await outlet.write(bytes(events))
            if cut is not None and max(sent) >= cut:
                await outlet.cut()
                return CUT
            if fail is not None and max(sent) >= fail:
                return FAILED
            if all(choice.generation.finished for choice in planned):
                return FINISHED
            await choices.progressed(planned)

    def _tail(self, choice: Choice, upto: int) -> bytes:
        """How a content event ends: with the running usage under continuous_usage_stats."""
        options = self.chat.stream_options
        if not (options and options.continuous_usage_stats):
            return _TAIL
        reasoning = choice.answer.reasoning_tokens(upto)
        fields = choices.usage([choice], reasoning, self.replica.config.enable_cache_report)
        return _TAIL[:-3] + b',"usage":' + encode(fields) + b"}\n\n"

    def _logprobs(self, choice: Choice, start: int, stop: int) -> bytes | None:
        """`,"logprobs":{...}` for tokens [start, stop), or None if not asked or none new."""
        if choice.logprobs is None or stop <= start:
            return None
        return b',"logprobs":' + encode(choice.logprobs.chat(start, stop))

    def _pieces(self, slot: int, start: int, stop: int, first: bytes, tail: bytes) -> bytes:
        """The events for pieces [start, stop): the first ends with `first` (which may carry
        the step's logprobs), the others with `tail`."""
        out = bytearray()
        answer, opening = self.planned[slot].answer, self._opens[slot]
        pieces = answer.pieces
        index = start
        while index < stop:
            kind, text, call = pieces[index]
            if kind == TOOL_NAME:
                out += self._tool_event(opening, answer.calls[call].id, call, text, "", tail=tail)
                index += 1
                continue
            end = index
            while end < stop and pieces[end][0] == kind:
                end += 1
            chunk = "".join(piece[1] for piece in pieces[index:end])
            ending = tail if out else first
            if kind == REASONING:
                out += opening + b'{"reasoning_content":' + encode(chunk) + b"}" + ending
            elif kind == CONTENT:
                delta = b'{"reasoning_content":null,"content":' + encode(chunk) + b"}"
                out += opening + delta + ending
            elif kind == TOOL_ARGS:
                out += self._tool_event(opening, None, call, None, chunk, tail=tail)
            index = end
        return bytes(out)

    @staticmethod
    def _tool_event(
        opening: bytes, call_id: str | None, index: int, name: str | None, args: str, *, tail: bytes
    ) -> bytes:
        """A pydantic-dumped ChatCompletionStreamResponse carrying one tool-call delta."""
        call = {
            "id": call_id,
            "index": index,
            "type": "function",
            "function": {"name": name, "arguments": args},
        }
        delta = {"role": None, "content": None, "reasoning_content": None, "tool_calls": [call]}
        if tail is _TAIL:
            tail = _TAIL[:-3] + b',"usage":null}\n\n'
        return opening + encode(delta) + tail

    def _closing(self) -> bytes:
        """The separate finish event of each choice, the optional usage event and [DONE]."""
        out = bytearray()
        for slot, choice in enumerate(self.planned):
            generation, answer = choice.generation, choice.answer
            reason = generation.finish_reason or "abort"
            matched = answer.matched if reason == "stop" else None
            if reason == "stop" and answer.calls:
                reason = "tool_calls"
            out += self._opens[slot] + b'{"reasoning_content":null},"logprobs":null,'
            out += b'"finish_reason":' + encode(reason)
            out += b',"matched_stop":' + encode(matched) + b"}]}\n\n"
        return bytes(out + self._usage() + DONE)

    def _usage(self) -> bytes:
        """The usage event, when the request or the server asks for one."""
        config = self.replica.config
        options = self.chat.stream_options
        if not (config.stream_include_usage_default or bool(options and options.include_usage)):
            return b""
        reasoning = sum(c.answer.reasoning_tokens(c.generation.generated) for c in self.planned)
        fields = choices.usage(self.planned, reasoning, config.enable_cache_report)
        return b"data: " + self._head + b',"choices":[],"usage":' + encode(fields) + b"}\n\n"
