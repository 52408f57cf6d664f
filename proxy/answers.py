"""What comes back from a backend, made OpenAI's: response ids, usage, error bodies.

SGLang answers with its own request id (32 hex, no `chatcmpl-` prefix), flat error bodies
(`{"object": "error", "message", "type", "code": <int>}`), `{"error": "Unauthorized"}` for a
wrong backend key, and in-band `data: {"error": ...}` events on a 200 stream. Here each becomes
what the OpenAI SDKs expect. Only small parts of a body are decoded (its `id` and `usage`);
everything else is passed on byte for byte.
"""

from __future__ import annotations

import msgspec

from proxy.errors import (
    BackendError,
    BackendTimeout,
    ErrorObject,
    ErrorResponse,
    GatewayError,
    InvalidRequest,
    NoHealthyBackend,
    PayloadTooLarge,
)


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int | None = None


class CompletionUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None

    @property
    def cached_tokens(self) -> int:
        details = self.prompt_tokens_details
        return (details.cached_tokens or 0) if details is not None else 0


class ResponseHead(msgspec.Struct):
    """The two fields of a response (or stream chunk) the gateway reads."""

    id: str | None = None
    usage: CompletionUsage | None = None


_head = msgspec.json.Decoder(ResponseHead)
_any = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def read_head(payload: bytes) -> ResponseHead:
    """`id` and `usage` of a JSON object; an empty head when the payload is not one."""
    try:
        return _head.decode(payload)
    except msgspec.DecodeError:
        return ResponseHead()


def replace_id(payload: bytes, upstream_id: str | None, response_id: str) -> bytes:
    """The payload with the backend's response id swapped for ours (first occurrence only)."""
    if not upstream_id or upstream_id == response_id:
        return payload
    return payload.replace(
        b'"' + upstream_id.encode() + b'"', b'"' + response_id.encode() + b'"', 1
    )


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
