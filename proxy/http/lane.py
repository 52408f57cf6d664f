"""The hot lane: the endpoint table's POST routes served straight from ASGI, in front of Litestar.

Litestar's per-request work (a `Request` object, the handler's signature model, dependency
resolution, the route's response pipeline, the exception and CORS middleware frames) cost
about as much CPU as the relay itself on these routes, which do none of it: they read two
headers and the body bytes and return a bare ASGI answer (`proxy.pipeline.replies`). `HotLane`
is what the server calls, in front of the Litestar app (so that these requests skip the app's
own entry too), and takes exactly those requests — `POST` to an exact path of a
table endpoint without path parameters, without an `Origin` header — and hands every other
request, unchanged, to Litestar (the same endpoints are registered there too, so a browser's
CORS request, a wrong method or a trailing slash are answered there exactly as before).

What Litestar would have done for these requests is done here the same way: the body limit
(413 in OpenAI's shape, announced or streamed), and a bug rendered as OpenAI's 500 body and
logged by type only. The body is read only once the relay has checked the key and the content
type (`proxy.http.incoming`); an answer given before the body was read to its end closes the
connection instead of draining it (`proxy.http.protocol`). Every request, Litestar's included,
passes here first, so an HTTP/1.0 client's answer is framed for HTTP/1.0 here
(`proxy.http.framing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from warmgate.proxy.endpoints import ENDPOINTS, Body, Endpoint
from warmgate.proxy.errors import GatewayError
from warmgate.proxy.http.framing import closing, tracked, whole_answer
from warmgate.proxy.http.incoming import BodyReader, read_head
from warmgate.proxy.pipeline.relay import Inbound, Relay
from warmgate.proxy.pipeline.replies import Answer, error_response

_log = structlog.get_logger("warmgate.errors")
_NO_PARAMS: Mapping[str, str] = {}
# Read once: on Python 3.11 each `Enum.MEMBER` read goes through the enum metaclass's
# __getattr__ hook, a slow generic lookup.
_HTTP: Final = ScopeType.HTTP


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
        if scope["type"] != _HTTP:
            await self._fallback(scope, receive, send)
            return
        if scope["http_version"] == "1.0":
            send = whole_answer(send)
        endpoint = self._endpoints.get(scope["path"]) if scope["method"] == "POST" else None
        head = read_head(scope["headers"])
        if endpoint is None or head.browser:
            # A browser's request too: Litestar's CORS middleware answers it (headers, preflight).
            if head.has_body:
                receive, send = tracked(receive, send)
            await self._fallback(scope, receive, send)
            return
        reader = BodyReader(
            receive,
            announced=head.announced,
            limit=self._max_body[endpoint.body],
            kind=endpoint.body,
        )
        inbound = Inbound(
            head.authorization,
            head.content_type,
            reader,
            _NO_PARAMS,
            receive,
            head.traceparent,
            head.tracestate,
        )
        answer: Answer
        try:
            answer = await self._relay.handle(endpoint, inbound)
        except Exception as exc:  # noqa: BLE001  # a bug: OpenAI's 500, as Litestar renders it
            _log.error("unhandled_error", error=type(exc).__name__, path=scope["path"])
            answer = error_response(
                GatewayError("The server had an error while processing your request.")
            )
        if head.has_body and not reader.done:  # answered without reading it: end the connection
            send = closing(send)
        # Sending cannot fail before the first byte; an error mid-stream ends the connection.
        await answer(scope, receive, send)
