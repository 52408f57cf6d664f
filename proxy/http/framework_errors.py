"""The one place errors become responses: every error, ours or the framework's, in OpenAI's shape.

The request pipeline renders its own errors (with the request's id); what reaches these
handlers is everything else: an unknown route (404), a wrong method (405), an oversized body
(413), a framework-side client error, or a bug. None of them leaves with Litestar's default
body, a 422 or a traceback.
"""

from __future__ import annotations

import secrets
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

_log = structlog.get_logger("warmgate.errors")
_JSON = "application/json"


def _render(error: GatewayError, status: int | None = None) -> Response[bytes]:
    headers = {"x-request-id": "req_" + secrets.token_hex(16), **error.headers}
    return Response(
        error.to_json(),
        status_code=status or error.status,
        media_type=_JSON,
        headers=headers,
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
