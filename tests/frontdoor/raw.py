"""HTTP/1.x spoken over a plain socket, for what no client library sends: heads too large or
too slow, a body left unsent, two Authorization fields, HTTP/1.0.

`exchange` sends bytes and reads until the server closes the connection or `wait_s` passes
(the bound on a test that fails, never a wait that must elapse for one that passes).
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass

import msgspec


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    # The server closed the connection after its answer (EOF seen within the wait).
    closed: bool

    def json(self) -> dict[str, object]:
        decoded: dict[str, object] = msgspec.json.decode(self.body)
        return decoded

    @property
    def error(self) -> dict[str, object]:
        error = self.json()["error"]
        assert isinstance(error, dict)
        return error


def parse(data: bytes, *, closed: bool) -> RawAnswer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return RawAnswer(status, headers, body, closed)


def connect(port: int, *, wait_s: float = 10.0) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port))
    conn.settimeout(wait_s)
    return conn


def read_until_closed(conn: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it closed the connection (False when the
    wait ran out first)."""
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        return data, True
    return data, True


def exchange(port: int, request: bytes, *, wait_s: float = 10.0) -> RawAnswer:
    """Send `request` on a new connection; the answer, read until the server closes."""
    with connect(port, wait_s=wait_s) as conn:
        # The server may answer and close before taking all of it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        data, closed = read_until_closed(conn)
    return parse(data, closed=closed)


def chunks_decoded(body: bytes) -> bytes:
    """A chunked body's payload."""
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out
