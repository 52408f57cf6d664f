"""Litestar routes for every endpoint of the table: thin handlers that read the request's parts
and hand them to the relay.

The hot lane serves the plain POST endpoints before Litestar sees them; these routes take the
rest: browsers (CORS), paths with parameters (retrieve and cancel a stored response), and the
framework's own answers for a wrong method or path. Handlers read the request as the hot lane
does (`proxy.http.incoming`: the first `Authorization`, the body only once the key passed,
within the same limits), never a parsed JSON dict, and return the relay's answer, a bare ASGI
app that Litestar passes through.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from litestar import HttpMethod, Request, route
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from warmgate.proxy.endpoints import ENDPOINTS, Body, Endpoint
from warmgate.proxy.http.incoming import BodyReader, RequestHead, read_head
from warmgate.proxy.pipeline.relay import Inbound, Relay

AnyRequest = Request[Any, Any, Any]
# Room for the form's own framing (boundaries, part headers, text fields) around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def request_headers(request: AnyRequest) -> RequestHead:
    """The fields the relay reads (the first of each), straight from the ASGI scope."""
    return read_head(request.scope["headers"])


def _handler(
    relay: Relay, endpoint: Endpoint, max_body_bytes: int
) -> Callable[[AnyRequest], Coroutine[Any, Any, ASGIApp]]:
    async def relay_request(request: AnyRequest) -> ASGIApp:
        head = read_head(request.scope["headers"])
        reader = BodyReader(
            request.receive, announced=head.announced, limit=max_body_bytes, kind=endpoint.body
        )
        params: Mapping[str, str] = {k: str(v) for k, v in request.path_params.items()}
        inbound = Inbound(
            head.authorization,
            head.content_type,
            reader,
            params,
            request.receive,
            head.traceparent,
            head.tracestate,
        )
        return await relay.handle(endpoint, inbound)

    return relay_request


def endpoint_routes(
    relay: Relay,
    endpoints: Iterable[Endpoint] = ENDPOINTS,
    *,
    max_body_bytes: Mapping[Body, int],
) -> list[HTTPRouteHandler]:
    """One route per table entry; each body within `max_body_bytes` of its kind (the form's
    includes MULTIPART_OVERHEAD_BYTES of framing)."""
    routes = []
    for endpoint in endpoints:
        limit = max_body_bytes[endpoint.body]
        decorate = route(
            endpoint.path,
            http_method=[HttpMethod(endpoint.method)],
            name=endpoint.name,
            status_code=200,
            # Litestar's own limit never reads the body here; the reader enforces `limit`.
            request_max_body_size=limit or None,
        )
        routes.append(decorate(_handler(relay, endpoint, limit)))
    return routes
