"""The hot lane: the three generation routes served straight from ASGI, in front of Litestar.

Litestar's per-request work (a `Request` object, the handler's signature model, dependency
resolution, the route's response pipeline, the exception and CORS middleware frames) cost
about as much CPU as the relay itself on these routes, which do none of it: they read two
headers and the body bytes and return a bare ASGI answer (`proxy.responses`). `HotLane` wraps
the app's ASGI handler and takes exactly those requests — `POST` to an exact generation path
without an `Origin` header — and hands every other request, unchanged, to Litestar (its
routes for the same paths stay registered, so a browser's CORS request, a wrong method or a
trailing slash are answered there exactly as before).

What Litestar would have done for these requests is done here the same way: the body limit
(413 in OpenAI's shape, announced or streamed), and a bug rendered as OpenAI's 500 body and
logged by type only.
"""

from __future__ import annotations

import secrets

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from warmgate.proxy.errors import GatewayError, PayloadTooLarge
from warmgate.proxy.pipeline.relay import Relay
from warmgate.proxy.pipeline.replies import JsonResponse

# Exact paths (as the ASGI scope spells them) → the relay's endpoint names.
ENDPOINTS = {
    "/v1/chat/completions": "chat.completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}

_log = structlog.get_logger("warmgate.errors")


class _BodyTooLargeError(Exception):
    pass


class _ClientGoneError(Exception):
    pass


def _error(error: GatewayError) -> JsonResponse:
    headers = [("x-request-id", "req_" + secrets.token_hex(16)), *error.headers.items()]
    return JsonResponse(error.to_json(), status=error.status, headers=headers)


class HotLane:
    """An ASGI app: the generation routes itself, everything else through `fallback`."""

    __slots__ = ("_fallback", "_max_body", "_relay")

    def __init__(self, relay: Relay, fallback: ASGIApp, *, max_body_bytes: int) -> None:
        self._relay = relay
        self._fallback = fallback
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            ENDPOINTS.get(scope["path"])
            if scope["type"] == ScopeType.HTTP and scope["method"] == "POST"
            else None
        )
        if endpoint is None:
            await self._fallback(scope, receive, send)
            return
        authorization = content_type = None
        announced = -1
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                announced = int(value) if value.isdigit() else -1
            elif name == b"origin":
                # A browser: Litestar's CORS middleware answers it (headers, preflight).
                await self._fallback(scope, receive, send)
                return
        try:
            body = await self._body(receive, announced)
        except _BodyTooLargeError:
            await _error(PayloadTooLarge("The request body is too large."))(scope, receive, send)
            return
        except _ClientGoneError:
            return  # nobody to answer
        try:
            answer = await self._relay.forward(
                endpoint,
                authorization=authorization,
                content_type=content_type,
                body=body,
                receive=receive,
            )
        except Exception as exc:  # noqa: BLE001  # a bug: OpenAI's 500, as Litestar renders it
            _log.error("unhandled_error", error=type(exc).__name__, path=scope["path"])
            failure = GatewayError("The server had an error while processing your request.")
            answer = _error(failure)
        # Sending cannot fail before the first byte; an error mid-stream ends the connection.
        await answer(scope, receive, send)

    async def _body(self, receive: Receive, announced: int) -> bytes:
        """The whole request body, at most `max_body_bytes` (announced or actually sent)."""
        limit = self._max_body
        if announced > limit:
            raise _BodyTooLargeError
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGoneError
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise _BodyTooLargeError
            return body
        parts = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGoneError
            part = message.get("body", b"")
            size += len(part)
            if size > limit:
                raise _BodyTooLargeError
            parts.append(part)
            if not message.get("more_body", False):
                return b"".join(parts)
