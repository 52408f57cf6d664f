"""CPU the front door's guards add to each request, measured piece by piece in process.

`python -m benchmarks.overhead --quick` moves by more than 5 % from run to run on a shared
2-core machine; the guards cost microseconds. This measures each piece on the inputs of a
typical SDK request, against the code it replaced where there was one:

- uvicorn's parser callbacks for one request head (17 header fields, as the Python SDK sends):
  uvicorn's own protocol vs the guarded one (`proxy/http/protocol.py`);
- reading the relay's header fields: the former inline loop vs `read_head`;
- `check_model_bounds` on a decoded chat request;
- per stream chunk: the CR test of `LineEnds` on an LF-framed chunk of three events.

    python -m benchmarks.front_door_cost

Prints microseconds per call (the best of 5 repeats); writes nothing.
"""

from __future__ import annotations

import asyncio
import timeit
from collections.abc import Callable, Sequence

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from warmgate.proxy.answers.sse import LineEnds
from warmgate.proxy.http.incoming import read_head
from warmgate.proxy.http.protocol import guarded_protocol
from warmgate.proxy.settings import ServerSettings
from warmgate.proxy.wire.bounds import check_model_bounds
from warmgate.proxy.wire.decoding import decode_chat_completion

SDK_HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"OpenAI/Python 3.57.0"),
    (b"x-stainless-lang", b"python"),
    (b"x-stainless-package-version", b"3.57.0"),
    (b"x-stainless-os", b"Linux"),
    (b"x-stainless-arch", b"x64"),
    (b"x-stainless-runtime", b"CPython"),
    (b"x-stainless-runtime-version", b"3.11.7"),
    (b"authorization", b"Bearer wg-bench-0123456789abcdef0123456789abcdef"),
    (b"x-stainless-async", b"false"),
    (b"x-stainless-retry-count", b"0"),
    (b"x-stainless-read-timeout", b"600"),
    (b"content-length", b"97"),
]
CALLS = 100_000


def microseconds(call: Callable[[], object], calls: int = CALLS) -> float:
    return min(timeit.repeat(call, number=calls, repeat=5)) / calls * 1e6


def inline_header_loop() -> tuple[str | None, str | None, int] | None:
    """The hot lane's header loop before `read_head` (the last Authorization won)."""
    authorization = content_type = None
    announced = -1
    for name, value in SDK_HEADERS:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            announced = int(value) if value.isdigit() else -1
        elif name == b"origin":
            return None
    return authorization, content_type, announced


async def _app(scope: object, receive: object, send: object) -> None:
    """Never called: the callbacks below stop before a request would start."""


def head_callbacks(protocol_class: type[HttpToolsProtocol]) -> Callable[[], None]:
    """One request head through the parser callbacks the guarded protocol overrides."""
    config = uvicorn.Config(_app, http="httptools", lifespan="off", log_level="warning")
    config.load()
    loop = asyncio.new_event_loop()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)

    def head() -> None:
        protocol.on_message_begin()
        protocol.on_url(b"/v1/chat/completions")
        for name, value in SDK_HEADERS:
            protocol.on_header(name, value)

    return head


def main(argv: Sequence[str] | None = None) -> int:
    body = b'{"model":"demo","messages":[{"role":"user","content":"hello"}],"max_tokens":64}'
    view = decode_chat_completion(body)
    event = b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    chunk = event * 3
    line_ends = LineEnds()
    uvicorn_head = microseconds(head_callbacks(HttpToolsProtocol), 20_000)
    guarded_head = microseconds(head_callbacks(guarded_protocol(ServerSettings())), 20_000)
    rows = [
        ("request head callbacks, uvicorn's protocol", uvicorn_head),
        ("request head callbacks, guarded protocol", guarded_head),
        ("header fields, former inline loop", microseconds(inline_header_loop)),
        ("header fields, read_head", microseconds(lambda: read_head(SDK_HEADERS))),
        (
            "check_model_bounds, chat",
            microseconds(
                lambda: check_model_bounds(view, context_length=8192, embedding_dimensions=None)
            ),
        ),
        (
            "per LF stream chunk: CR test",
            microseconds(lambda: line_ends.after_cr or b"\r" in chunk),
        ),
    ]
    for name, value in rows:
        print(f"{name:48s} {value:6.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
