"""How an answer ends its connection: `connection: close` when it was given before the
request's body was read (so that the client does not send another request on a connection the
server is ending, `proxy.http.protocol`); and answers to HTTP/1.0 clients, framed as HTTP/1.0
knows: whole, with a Content-Length.

uvicorn frames an answer without a Content-Length (a stream) with chunked transfer-encoding,
which HTTP/1.0 does not have, whatever the client's version. For an HTTP/1.0 request the answer
is therefore gathered and sent whole: a stream arrives at once at its end, but readable. (uvicorn
closes HTTP/1.0 connections after each answer; the status line says HTTP/1.1, as RFC 9110
allows.)
"""

from __future__ import annotations

from litestar.types import HTTPResponseStartEvent, Message, Receive, ReceiveMessage, Send

_DROPPED = (b"content-length", b"transfer-encoding")
_CLOSE = (b"connection", b"close")


def closing(send: Send) -> Send:
    """`send` whose answer says `connection: close`."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), _CLOSE]
            message = {
                "type": "http.response.start",
                "status": message["status"],
                "headers": headers,
            }
        await send(message)

    return send_closing


def tracked(receive: Receive, send: Send) -> tuple[Receive, Send]:
    """`receive` and `send` for a request with a body that another app reads, or not: its
    answer says `connection: close` unless the body was received to its end first."""
    done = False

    async def receive_tracked() -> ReceiveMessage:
        nonlocal done
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            done = True
        return message

    async def send_tracked(message: Message) -> None:
        if message["type"] == "http.response.start" and not done:
            headers = [*message.get("headers", ()), _CLOSE]
            message = {
                "type": "http.response.start",
                "status": message["status"],
                "headers": headers,
            }
        await send(message)

    return receive_tracked, send_tracked


def whole_answer(send: Send) -> Send:
    """`send` for one HTTP/1.0 request: the answer's start and body are held until its last
    part, then sent with the Content-Length of the whole."""
    held: list[HTTPResponseStartEvent] = []
    parts: list[bytes] = []

    async def send_whole(message: Message) -> None:
        if message["type"] == "http.response.start":
            held.append(message)
            return
        if message["type"] != "http.response.body" or not held:
            await send(message)
            return
        parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(parts)
        start = held[0]
        headers = [(n, v) for n, v in start.get("headers", ()) if n.lower() not in _DROPPED]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return send_whole
