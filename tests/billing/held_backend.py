"""A chat backend whose stream stays open after `[DONE]` until the test releases it.

SGLang ends its response right after `data: [DONE]`, so whatever the gateway does at the end of
the upstream body and whatever it does on seeing the final event happen together. Holding the
connection open between the two shows which one the gateway's accounting waits for.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD_TIMEOUT_S = 30.0


def _chunk(**fields: Any) -> bytes:
    body = {"id": "held-1", "object": "chat.completion.chunk", "created": 1, "model": "demo"}
    return b"data: " + json.dumps({**body, **fields}).encode() + b"\n\n"


STREAM = [
    _chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
    _chunk(choices=[{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]),
    _chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    _chunk(choices=[], usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}),
    b"data: [DONE]\n\n",
]
ANSWER = json.dumps(
    {
        "id": "held-2",
        "object": "chat.completion",
        "created": 1,
        "model": "demo",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # http.server's naming
        self._send(200, b"{}")

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if not request.get("stream"):
            self._send(200, ANSWER)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in STREAM:
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        self.server.release.wait(HOLD_TIMEOUT_S)  # the connection stays open past [DONE]
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # the stdlib signature
        """Quiet: the test output is the gateway's."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    release: threading.Event


class HeldStreamBackend:
    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.release = threading.Event()
        self.release = self._server.release
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HeldStreamBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
