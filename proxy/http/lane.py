"""The hot lane: the endpoint table's POST routes served straight from ASGI, in front of Litestar.

Litestar's per-request work (a `Request` object, the handler's signature model, dependency
resolution, the route's response pipeline, the exception and CORS middleware frames) cost
about as much CPU as the relay itself on these routes, which do none of it: they read two
headers and the body bytes and return a bare ASGI answer (`proxy.pipeline.replies`). `HotLane`
wraps the app's ASGI handler and takes exactly those requests — `POST` to an exact path of a
table endpoint without path parameters, without an `Origin` header — and hands every other
request, unchanged, to Litestar (the same endpoints are registered there too, so a browser's
CORS request, a wrong method or a trailing slash are answered there exactly as before).

What Litestar would have done for these requests is done here the same way: the body limit
(413 in OpenAI's shape, announced or streamed), and a bug rendered as OpenAI's 500 body and
logged by type only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from warmgate.proxy.endpoints import ENDPOINTS, Body, Endpoint
from warmgate.proxy.errors import GatewayError, PayloadTooLarge
from warmgate.proxy.pipeline.relay import Inbound, Relay
from warmgate.proxy.pipeline.replies import Answer, DisconnectWatch, error_response

_log = structlog.get_logger("warmgate.errors")
_NO_PARAMS: Mapping[str, str] = {}


class _BodyTooLargeError(Exception):
    pass


class _ClientGoneError(Exception):
    pass


class HotLane:
    """An ASGI app: the table's plain POST endpoints itself, everything else through
    `fallback`."""

    __slots__ = ("_endpoints", "_fallback", "_max_body", "_relay")

    def __init__(
        self,
        relay: Relay,
        fallback: ASGIApp,
        endpoints: Iterable[Endpoint] = ENDPOINTS,
        *,
        max_body_bytes: Mapping[Body, int],
    ) -> None:
        self._relay = relay
        self._fallback = fallback
        self._max_body = max_body_bytes
        self._endpoints: dict[str, Endpoint] = {
            endpoint.path: endpoint
            for endpoint in endpoints
            if endpoint.method == "POST" and not endpoint.has_path_params
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self._endpoints.get(scope["path"])
            if scope["type"] == ScopeType.HTTP and scope["method"] == "POST"
            else None
        )
        if endpoint is None:
            await self._fallback(scope, receive, send)
            return
        authorization = content_type = traceparent = tracestate = None
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
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = _joined(tracestate, value.decode("latin-1"))
        try:
            body = await self._body(
                receive, announced, self._max_body[endpoint.body], endpoint.body
            )
        except _BodyTooLargeError:
            too_large = PayloadTooLarge("The request body is too large.")
            await error_response(too_large)(scope, receive, send)
            return
        except _ClientGoneError:
            return  # nobody to answer
        inbound = Inbound(
            authorization,
            content_type,
            body,
            _NO_PARAMS,
            DisconnectWatch(receive),
            traceparent,
            tracestate,
        )
        answer: Answer
        try:
            answer = await self._relay.handle(endpoint, inbound)
        except Exception as exc:  # noqa: BLE001  # a bug: OpenAI's 500, as Litestar renders it
            _log.error("unhandled_error", error=type(exc).__name__, path=scope["path"])
            answer = error_response(
                GatewayError("The server had an error while processing your request.")
            )
        # Sending cannot fail before the first byte; an error mid-stream ends the connection.
        await answer(scope, receive, send)

    @staticmethod
    async def _body(receive: Receive, announced: int, limit: int, kind: Body) -> bytes | bytearray:
        """The whole request body, at most `limit` bytes (announced or actually sent). JSON
        arrives mostly in one message, kept as it came; a multipart form goes into one buffer
        of our own, validated and edited in place there."""
        if announced > limit:
            raise _BodyTooLargeError
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGoneError
        first: bytes = message.get("body", b"")
        if not message.get("more_body", False) and kind is not Body.FORM:
            if len(first) > limit:
                raise _BodyTooLargeError
            return first
        parts = [first]
        size = len(first)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGoneError
            part: bytes = message.get("body", b"")
            size += len(part)
            if size > limit:
                raise _BodyTooLargeError
            parts.append(part)
        if size > limit:
            raise _BodyTooLargeError
        return bytearray().join(parts) if kind is Body.FORM else b"".join(parts)


def _joined(first: str | None, more: str) -> str:
    """Repeated `tracestate` headers are one list, in order (W3C trace context)."""
    return more if first is None else f"{first},{more}"
