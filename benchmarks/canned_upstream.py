"""A near-zero-cost OpenAI/SGLang-shaped upstream: canned answers from a raw asyncio protocol.

The relay benchmarks measure what a gateway adds, so the server behind it must cost almost
nothing (the role nginx with a static answer plays elsewhere). This one parses HTTP/1.1 with
httptools, keeps connections alive and answers from bytes built once:
- `POST /v1/chat/completions` and `/v1/completions`: a canned completion, or with `"stream": true`
  a canned SSE stream (role event, `tokens` content events, finish event, a usage event when
  `stream_options.include_usage` is set, `[DONE]`), each event its own HTTP chunk;
- the probes and metadata a gateway or router asks for: `/health`, `/health_generate`,
  `/v1/models`, `/get_model_info`, `/model_info`, `/get_server_info`, `/server_info`, `/v1/loads`,
  `/metrics`, and SkyServe's controller sync (naming this server as the one ready replica).
`--delay-ms`, or at run time `POST /_canned/delay?ms=N`, holds every completion that long (to keep
many requests in flight on purpose, for the memory measurement).

    python -m benchmarks.canned_upstream --port 30000 --model demo
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
from collections.abc import Sequence
from typing import Any, cast

import httptools
import msgspec

_encode = msgspec.json.encode
_INCLUDE_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_STREAM = re.compile(rb'"stream"\s*:\s*true')


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: ".encode()
        + content_type
        + f"\r\ncontent-length: {len(body)}\r\n\r\n".encode()
    )
    return head + body


def _chunk(event: dict[str, Any] | bytes) -> bytes:
    data = event if isinstance(event, bytes) else _encode(event)
    payload = b"data: " + data + b"\n\n"
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


class CannedAnswers:
    """Every response the server sends, encoded once."""

    def __init__(self, model: str, tokens: int, self_url: str, prompt_tokens: int = 12) -> None:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": prompt_tokens + tokens,
        }
        text = "tok " * tokens
        json_type = b"application/json"
        created = 1_764_300_000
        chat = {
            "id": "chatcmpl-5f0e3a0c9b8d4e61a2b7c3d4e5f60718",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "tool_calls": None},
                    "logprobs": None,
                    "finish_reason": "length",
                    "matched_stop": None,
                }
            ],
            "usage": usage,
        }
        completion = {
            "id": "cmpl-5f0e3a0c9b8d4e61a2b7c3d4e5f60718",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}],
            "usage": usage,
        }
        self.chat = _response("200 OK", json_type, _encode(chat))
        self.completion = _response("200 OK", json_type, _encode(completion))
        self.chat_stream, self.chat_stream_usage = self._stream(chat, "chat.completion.chunk")
        self.completion_stream, self.completion_stream_usage = self._stream(completion, None)
        ok = b'{"status":"ok"}'
        self.health = _response("200 OK", b"text/plain", b"")
        models = {
            "object": "list",
            "data": [{"id": model, "object": "model", "created": created, "owned_by": "sglang"}],
        }
        info = {
            "model_path": model,
            "served_model_name": model,
            "tokenizer_path": model,
            "is_generation": True,
            "context_length": 131072,
            "max_total_num_tokens": 420000,
            "max_running_requests": 2048,
            "tp_size": 1,
            "dp_size": 1,
            "version": "0.5.23",
        }
        loads = {"loads": [{"dp_rank": 0, "num_running_reqs": 0, "num_waiting_reqs": 0}]}
        self.paths: dict[bytes, bytes] = {
            b"/health": self.health,
            b"/health_generate": self.health,
            b"/ping": self.health,
            b"/v1/models": _response("200 OK", json_type, _encode(models)),
            b"/get_model_info": _response("200 OK", json_type, _encode(info)),
            b"/model_info": _response("200 OK", json_type, _encode(info)),
            b"/get_server_info": _response("200 OK", json_type, _encode(info)),
            b"/server_info": _response("200 OK", json_type, _encode(info)),
            b"/v1/loads": _response("200 OK", json_type, _encode(loads)),
            b"/metrics": _response("200 OK", b"text/plain; version=0.0.4", b""),
            b"/flush_cache": _response("200 OK", json_type, ok),
            # SkyServe's load balancer asks its controller for the ready replicas: this server.
            b"/controller/load_balancer_sync": _response(
                "200 OK", json_type, _encode({"replica_info": {self_url: {}}})
            ),
        }
        self.delay_s = 0.0  # hold before each completion (seconds); settable at run time
        self.not_found = _response(
            "404 Not Found", json_type, b'{"object":"error","message":"Not Found","code":404}'
        )

    @staticmethod
    def _stream(whole: dict[str, Any], chunk_object: str | None) -> tuple[bytes, bytes]:
        base = {k: whole[k] for k in ("id", "object", "created", "model")}
        if chunk_object:
            base["object"] = chunk_object
        tokens = whole["usage"]["completion_tokens"]
        events: list[bytes] = []

        def event(choice: dict[str, Any]) -> bytes:
            return _chunk({**base, "choices": [{"index": 0, "logprobs": None, **choice}]})

        chat = chunk_object is not None
        if chat:
            events.append(event({"delta": {"role": "assistant", "content": ""}}))
        for _ in range(tokens):
            delta = {"delta": {"content": "tok "}} if chat else {"text": "tok "}
            events.append(event({**delta, "finish_reason": None}))
        finish: dict[str, Any] = {"delta": {}} if chat else {"text": ""}
        events.append(event({**finish, "finish_reason": "length"}))
        usage = _chunk({**base, "choices": [], "usage": whole["usage"]})
        done = _chunk(b"[DONE]") + b"0\r\n\r\n"
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        body = b"".join(events)
        return head + body + done, head + body + usage + done


class CannedProtocol(asyncio.Protocol):
    def __init__(self, answers: CannedAnswers) -> None:
        self.answers = answers
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0]
        if path in (b"/v1/chat/completions", b"/v1/completions"):
            answer = self._completion(path, b"".join(self.body))
            if self.answers.delay_s > 0:
                asyncio.get_running_loop().call_later(self.answers.delay_s, self._write, answer)
                return
        elif path == b"/_canned/delay":
            query = self.url.partition(b"?")[2]
            self.answers.delay_s = float(query.partition(b"ms=")[2] or 0) / 1000.0
            answer = self.answers.health
        else:
            answer = self.answers.paths.get(path, self.answers.not_found)
        self._write(answer)

    def _completion(self, path: bytes, body: bytes) -> bytes:
        a = self.answers
        chat = path == b"/v1/chat/completions"
        if _STREAM.search(body) is None:
            return a.chat if chat else a.completion
        if _INCLUDE_USAGE.search(body) is not None:
            return a.chat_stream_usage if chat else a.completion_stream_usage
        return a.chat_stream if chat else a.completion_stream

    def _write(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)


async def serve(host: str, port: int, answers: CannedAnswers) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: CannedProtocol(answers), host, port, backlog=4096, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.canned_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=30000)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--tokens", type=int, default=20, help="completion tokens per answer")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="hold each completion")
    args = parser.parse_args(argv)
    answers = CannedAnswers(args.model, args.tokens, f"http://{args.host}:{args.port}")
    answers.delay_s = args.delay_ms / 1000.0
    try:
        import uvloop  # noqa: PLC0415 - optional: asyncio's own loop works, more slowly
    except ImportError:
        asyncio.run(serve(args.host, args.port, answers))
    else:
        uvloop.run(serve(args.host, args.port, answers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
