"""Litestar's exception handlers: what the framework raises, answered in OpenAI's shape.

The pipeline answers its own errors; what reaches these handlers is everything else: an
unknown route (404), a wrong method (405), an oversized body (413), a framework-side client
error, a `GatewayError` raised by a route, or a bug. Each is answered through
`pipeline.replies.error_parts`, like every other error: never Litestar's default body, a 422
or a traceback.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from warmgate.proxy.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from warmgate.proxy.media import JSON
from warmgate.proxy.pipeline.replies import error_parts

_log = structlog.get_logger("warmgate.errors")


def _render(error: GatewayError, status: int | None = None) -> Response[bytes]:
    error_status, headers, body = error_parts(error)
    return Response(
        body, status_code=status or error_status, media_type=JSON, headers=dict(headers)
    )


def _describe(request: Request[Any, Any, Any]) -> str:
    return f"{request.method} {request.url.path}"


def gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[bytes]:
    return _render(exc)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's HTTP errors (routing, body limits, framework validation) as OpenAI's."""
    status = exc.status_code
    if status == 404:
        return _render(NotFound(f"Invalid URL ({_describe(request)})", code="unknown_url"))
    if status == 405:
        allow = dict(exc.headers or {})
        return _render(
            MethodNotAllowed(f"Method not allowed ({_describe(request)})", headers=allow)
        )
    if status == 413:
        return _render(PayloadTooLarge("The request body is too large."))
    if 400 <= status < 500:
        return _render(InvalidRequest(str(exc.detail) or "Invalid request."), status=400)
    _log.error("framework_error", status=status, path=request.url.path, detail=str(exc.detail))
    return _render(GatewayError("The server had an error while processing your request."))


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A bug: logged with its type (not its message, which could hold request data)."""
    _log.error("unhandled_error", error=type(exc).__name__, path=request.url.path)
    return _render(GatewayError("The server had an error while processing your request."))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    GatewayError: gateway_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
