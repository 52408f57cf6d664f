"""A backend's failure made the gateway's: its error bodies, whatever their shape, as OpenAI's.

SGLang answers errors with flat bodies (`{"object": "error", "message", "type", "code": <int>}`),
`{"error": "Unauthorized"}` for a wrong backend key, plain text from a proxy in between, and
in-band `data: {"error": ...}` events on a 200 stream. Each becomes the gateway's error (with
the status OpenAI uses) or an OpenAI-shaped error event.
"""

from __future__ import annotations

import msgspec

from warmgate.proxy.errors import (
    BackendError,
    BackendTimeout,
    ErrorObject,
    ErrorResponse,
    GatewayError,
    InvalidRequest,
    NoHealthyBackend,
    NotFound,
    PayloadTooLarge,
)

_any = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def _error_fields(payload: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, type, param) from any error body a backend sends: nested, flat, a bare
    string under `error`, or plain text."""
    try:
        body = _any.decode(payload)
    except msgspec.DecodeError:
        text = payload.decode("utf-8", "replace").strip()
        return (text[:500] or None), None, None
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error", body)
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, dict):
        return None, None, None
    message, kind, param = error.get("message"), error.get("type"), error.get("param")
    return (
        message if isinstance(message, str) else None,
        kind if isinstance(kind, str) else None,
        param if isinstance(param, str) else None,
    )


def backend_failure(status: int, payload: bytes) -> GatewayError:  # noqa: PLR0911  # a case per status family
    """The gateway's error for a backend's non-2xx answer.

    The client's mistakes the backend caught (context length, a bad schema) stay 400s with the
    backend's message; a backend that refuses our backend key, or does not know the served
    model, is our misconfiguration: 502, never the client's 401 or 404.
    """
    message, _, param = _error_fields(payload)
    if status == 413:
        return PayloadTooLarge(message or "The request is too large for the model backend.")
    if status in (400, 422):
        return InvalidRequest(message or "The model backend rejected the request.", param=param)
    if status in (401, 403):
        return BackendError("The model backend refused the gateway's credentials.")
    if status == 404:
        return BackendError("The model backend does not serve this model.")
    if status in (408, 504):
        return BackendTimeout("The model backend did not answer in time.")
    if status in (429, 503):
        return NoHealthyBackend(
            "The model backend is at capacity; please retry shortly.", code="backend_overloaded"
        )
    detail = f": {message}" if message else "."
    return BackendError(f"The model backend failed (HTTP {status}){detail}")


def in_band_error(payload: bytes) -> bytes:
    """An error event's JSON from a backend (`{"error": {..., "code": 503}}`) in OpenAI's
    shape: every key present, `code` a string or null."""
    message, kind, param = _error_fields(payload)
    error = ErrorObject(
        message=message or "The model backend failed while answering.",
        type=kind if kind in ("invalid_request_error", "server_error") else "server_error",
        param=param,
        code="backend_error",
    )
    return _encoder.encode(ErrorResponse(error))


def passed_on_404(payload: bytes, *, model: str, path: str, param: str) -> NotFound:
    """A 404 from a healthy backend, as the client's 404: the backend lacks the route
    (FastAPI's `{"detail": "Not Found"}`), or it does not know the stored response named."""
    if b'"detail"' in payload:
        return NotFound(
            f"The model '{model}' does not support {path} on its backends.",
            code="unsupported_endpoint",
        )
    failure = backend_failure(400, payload)  # the message and param of its 404
    return NotFound(failure.message, param=failure.param or param)
