"""A backend that serves chat models only: healthy, but without the routes of the rest of the
surface (FastAPI's `{"detail":"Not Found"}` for them), as an older or text-only server answers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        healthy = self.path.startswith("/health")
        body = b"" if healthy else b'{"detail":"Not Found"}'
        self.send_response(200 if healthy else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer  # noqa: N815  # http.server's naming
    do_POST = _answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # the stdlib signature
        """Quiet: the test output is the gateway's."""


class ChatOnlyBackend:
    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ChatOnlyBackend:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
