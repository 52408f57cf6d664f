"""What the HTTP entry reads of a request: the few header fields the relay uses, and the body
within its limit, only when the relay asks for it (after the key has been checked).

Both entries (the hot lane and the Litestar routes) read requests through this module, so a
request means the same on every route: the first `Authorization` field counts, whichever
route it goes to (the admin guard and `/v1/usage` read the first too), and the body limit is
the same whether the size is announced or the body is streamed.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from litestar.types import Receive

from warmgate.proxy.endpoints import Body
from warmgate.proxy.errors import PayloadTooLarge
from warmgate.proxy.pipeline.relay import ClientGoneError

# Enum members read per request, looked up once here: on Python 3.11 each `Enum.MEMBER`
# read goes through the enum metaclass's __getattr__ hook, a slow generic lookup.
_NO_BODY, _FORM_BODY = Body.NONE, Body.FORM

_TOO_LARGE = "The request body is too large."


class RequestHead(msgspec.Struct, frozen=True):
    authorization: str | None
    content_type: str | None
    # Content-Length, or -1 when the body's size is not announced (chunked) or not a number.
    announced: int
    # An `Origin` field: a browser, whose CORS Litestar answers.
    browser: bool
    # A body follows the head (a Content-Length above 0, or a Transfer-Encoding).
    has_body: bool
    # W3C trace context, passed on to the backend; repeated `tracestate` fields are one list.
    traceparent: str | None = None
    tracestate: str | None = None


# The fields read, by name; any other field costs one dictionary miss (a loop of comparisons
# cost one per field read for every other field, and SDKs send a dozen of those).
_AUTHORIZATION, _CONTENT_TYPE, _CONTENT_LENGTH, _ORIGIN, _TRANSFER_ENCODING = range(5)
_TRACEPARENT, _TRACESTATE = 5, 6
_READ = {
    b"authorization": _AUTHORIZATION,
    b"content-type": _CONTENT_TYPE,
    b"content-length": _CONTENT_LENGTH,
    b"origin": _ORIGIN,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"traceparent": _TRACEPARENT,
    b"tracestate": _TRACESTATE,
}


def read_head(headers: Iterable[tuple[bytes, bytes]]) -> RequestHead:
    """The fields the relay uses, from the ASGI scope's raw header list; of a repeated field,
    the first (but `tracestate`, whose repetitions are joined in order, as W3C says)."""
    authorization = content_type = traceparent = tracestate = None
    announced = -1
    browser = chunked = False
    read = _READ.get
    for name, value in headers:
        field = read(name)
        if field is None:
            continue
        if field == _AUTHORIZATION:
            if authorization is None:
                authorization = value.decode("latin-1")
        elif field == _CONTENT_TYPE:
            if content_type is None:
                content_type = value.decode("latin-1")
        elif field == _CONTENT_LENGTH:
            announced = int(value) if value.isdigit() else -1
        elif field == _ORIGIN:
            browser = True
        elif field == _TRANSFER_ENCODING:
            chunked = True
        elif field == _TRACEPARENT:
            if traceparent is None:
                traceparent = value.decode("latin-1")
        else:
            more = value.decode("latin-1")
            tracestate = more if tracestate is None else f"{tracestate},{more}"
    has_body = chunked or announced > 0
    return RequestHead(
        authorization, content_type, announced, browser, has_body, traceparent, tracestate
    )


class BodyReader:
    """Reads one request's body when called: at most `limit` bytes, announced or actually
    sent (PayloadTooLarge past it, before reading on when announced). JSON arrives mostly in one
    message, kept as it came; a multipart form goes into one buffer of our own, validated and
    edited in place there. `done`: the body was read to its end."""

    __slots__ = ("_announced", "_kind", "_limit", "_receive", "done")

    def __init__(self, receive: Receive, *, announced: int, limit: int, kind: Body) -> None:
        self._receive = receive
        self._announced = announced
        self._limit = limit
        self._kind = kind
        self.done = False

    async def __call__(self) -> bytes | bytearray:
        kind, limit = self._kind, self._limit
        if kind is _NO_BODY:
            return b""
        if self._announced > limit:
            raise PayloadTooLarge(_TOO_LARGE)
        message = await self._receive()
        if message["type"] != "http.request":
            raise ClientGoneError
        first: bytes = message.get("body", b"")
        if not message.get("more_body", False) and kind is not _FORM_BODY:
            if len(first) > limit:
                raise PayloadTooLarge(_TOO_LARGE)
            self.done = True
            return first
        parts = [first]
        size = len(first)
        while message.get("more_body", False):
            message = await self._receive()
            if message["type"] != "http.request":
                raise ClientGoneError
            part: bytes = message.get("body", b"")
            size += len(part)
            if size > limit:
                raise PayloadTooLarge(_TOO_LARGE)
            parts.append(part)
        if size > limit:
            raise PayloadTooLarge(_TOO_LARGE)
        self.done = True
        return bytearray().join(parts) if kind is _FORM_BODY else b"".join(parts)
