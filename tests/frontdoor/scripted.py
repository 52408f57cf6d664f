"""A backend that answers what a test scripts: a real HTTP server on loopback, for the answers
SGLang itself does not give but a replica behind a proxy, or a broken one, does (an HTML page
with status 200, a truncated body, a CRLF-framed stream, an error that spills internals).

`ScriptedBackend.answer(path, Scripted(...))` sets the next answers for a path; the health
probe path always answers 200.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Scripted:
    status: int = 200
    content_type: str = "application/json"
    # The body, sent as these parts (a stream's events); with `chunked` False, one
    # Content-Length body.
    parts: tuple[bytes, ...] = (b"{}",)
    chunked: bool = False
    # Announce this Content-Length but send only the parts, then close (a truncated answer).
    announced_length: int | None = None


@dataclass
class _Script:
    answers: dict[str, Scripted] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/health"):
            self._send(Scripted(parts=(b"",)))
            return
        with self.server.script.lock:
            scripted = self.server.script.answers.get(self.path, Scripted(status=404))
        self._send(scripted)

    def _send(self, scripted: Scripted) -> None:
        self.send_response(scripted.status)
        self.send_header("Content-Type", scripted.content_type)
        body = b"".join(scripted.parts)
        if scripted.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in scripted.parts:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            announced = scripted.announced_length or len(body)
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            self.wfile.write(body)
            if scripted.announced_length is not None:
                self.close_connection = True
        self.wfile.flush()

    do_GET = _answer  # noqa: N815  # http.server's naming
    do_POST = _answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # the stdlib signature
        """Quiet: the test output is the gateway's."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: _Script


class ScriptedBackend:
    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.script = _Script()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ScriptedBackend:
        self._thread.start()
        return self

    def answer(self, path: str, scripted: Scripted) -> None:
        with self._server.script.lock:
            self._server.script.answers[path] = scripted

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
