"""Litestar routes for every endpoint of the table: thin handlers that read the request's parts
and hand them to the relay.

The hot lane serves the plain POST endpoints before Litestar sees them; these routes take the
rest: browsers (CORS), paths with parameters (retrieve and cancel a stored response), and the
framework's own answers for a wrong method or path. Handlers read two headers and the body
bytes, never a parsed JSON dict, and return the relay's answer, a bare ASGI app that Litestar
passes through.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, NamedTuple

from litestar import HttpMethod, Request, route
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from warmgate.proxy.endpoints import ENDPOINTS, Body, Endpoint
from warmgate.proxy.pipeline.relay import Inbound, Relay
from warmgate.proxy.pipeline.replies import DisconnectWatch

AnyRequest = Request[Any, Any, Any]
# Room for the form's own framing (boundaries, part headers, text fields) around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class RequestHeaders(NamedTuple):
    authorization: str | None
    content_type: str | None
    traceparent: str | None
    tracestate: str | None


def request_headers(request: AnyRequest) -> RequestHeaders:
    """The headers the relay reads, straight from the ASGI scope, without a header map."""
    authorization = content_type = traceparent = None
    tracestate: list[str] = []
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"tracestate":
            tracestate.append(value.decode("latin-1"))
    return RequestHeaders(
        authorization, content_type, traceparent, ",".join(tracestate) if tracestate else None
    )


async def _read(request: AnyRequest, kind: Body) -> bytes | bytearray:
    if kind is Body.NONE:
        return b""
    if kind is Body.JSON:
        return await request.body()
    # One buffer of our own for the whole form: validated in place and, where the model or
    # format must change, edited in place, so the upload is never held twice.
    form = bytearray()
    async for chunk in request.stream():
        form += chunk
    return form


def _handler(
    relay: Relay, endpoint: Endpoint
) -> Callable[[AnyRequest], Coroutine[Any, Any, ASGIApp]]:
    async def relay_request(request: AnyRequest) -> ASGIApp:
        headers = request_headers(request)
        body = await _read(request, endpoint.body)
        params: Mapping[str, str] = {k: str(v) for k, v in request.path_params.items()}
        watch = DisconnectWatch(request.receive)
        inbound = Inbound(
            headers.authorization,
            headers.content_type,
            body,
            params,
            watch,
            headers.traceparent,
            headers.tracestate,
        )
        return await relay.handle(endpoint, inbound)

    return relay_request


def endpoint_routes(
    relay: Relay, endpoints: Iterable[Endpoint] = ENDPOINTS, *, max_form_bytes: int
) -> list[HTTPRouteHandler]:
    """One route per table entry; forms may be as large as `max_form_bytes` plus framing."""
    routes = []
    for endpoint in endpoints:
        limit = max_form_bytes + MULTIPART_OVERHEAD_BYTES if endpoint.body is Body.FORM else None
        decorate = route(
            endpoint.path,
            http_method=[HttpMethod(endpoint.method)],
            name=endpoint.name,
            status_code=200,
            request_max_body_size=limit,
        )
        routes.append(decorate(_handler(relay, endpoint)))
    return routes
