"""A backend's failure made the gateway's: its error bodies, whatever their shape, as OpenAI's.

SGLang answers errors with flat bodies (`{"object": "error", "message", "type", "code": <int>}`),
`{"error": "Unauthorized"}` for a wrong backend key, plain text from a proxy in between, and
in-band `data: {"error": ...}` events on a 200 stream. Each becomes the gateway's error (with
the status OpenAI uses) or an OpenAI-shaped error event.

The backend's own words reach the client only when they are one of SGLang's known messages
about the client's request (`CLIENT_MESSAGES`, matched whole: context length, sampling ranges,
an unknown stored response), and its `param` only when it reads as a field name. Any other
text (an exception's message from deep inside a server, a proxy's page, whatever a backend may
hold) is replaced by a generic message with the backend's status; the gateway logs the
original (`proxy.pipeline.connect`), and the client keeps the request id to ask about it.
"""

from __future__ import annotations

import re

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

CONTEXT_LENGTH_MESSAGES = (
    re.compile(
        r"The input \(\d+ tokens\) is longer than the model's context length \(\d+ tokens\)\."
    ),
    re.compile(
        r"Requested token count exceeds the model's maximum context length of \d+ tokens\. "
        r"You requested a total of \d+ tokens: \d+ tokens from the input messages and \d+ "
        r"tokens for the completion\. Please reduce the number of tokens in the input messages "
        r"or the completion to fit within the limit\."
    ),
)
_SAMPLING_FIELDS = (
    "temperature|top_p|min_p|top_k|frequency_penalty|presence_penalty|repetition_penalty|"
    "max_new_tokens|min_new_tokens|beam_width"
)
CLIENT_MESSAGES = (
    *CONTEXT_LENGTH_MESSAGES,
    # SGLang's sampling-parameter checks: "top_p must be in (0, 1], got 1.5."
    re.compile(rf"(?:{_SAMPLING_FIELDS}) must be [\w\s\[\](),.=+-]{{1,80}}, got [\w.+-]{{1,40}}\."),
    re.compile(r"Messages cannot be empty\."),
    re.compile(r"The request queue is full\."),
    re.compile(r"at most \d+ stop (?:strings|regex patterns) are allowed, got \d+"),
    re.compile(r"Response with id '[\w-]{1,128}' not found\."),
)
# A `param` that names a field (`messages[0].content`), never free text.
_PARAM = re.compile(r"[A-Za-z_][\w.\[\]]{0,127}")


def client_message(message: str | None) -> str | None:
    """The backend's message when it is one of SGLang's known messages about the request."""
    if message is None or len(message) > 512:
        return None
    if any(pattern.fullmatch(message) for pattern in CLIENT_MESSAGES):
        return message
    return None


def _param(param: str | None) -> str | None:
    return param if param is not None and _PARAM.fullmatch(param) else None


def error_text(payload: bytes, limit: int = 500) -> str:
    """A backend's error body as one line for the gateway's log: at most `limit` characters."""
    return " ".join(payload[: limit * 4].decode("utf-8", "replace").split())[:limit]


def _error_fields(payload: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, type, param) from any error body a backend sends: nested, flat, a bare
    string under `error`, or plain text."""
    try:
        body = _any.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return None, None, None
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

    The client's mistakes the backend caught stay 400s, with the backend's message where it is
    a known one (context length: OpenAI's `context_length_exceeded`); a backend that refuses our
    backend key, or does not know the served model, is our misconfiguration: 502, never the
    client's 401 or 404. No other backend text is passed on.
    """
    raw_message, _, raw_param = _error_fields(payload)
    message, param = client_message(raw_message), _param(raw_param)
    if status == 413:
        return PayloadTooLarge(message or "The request is too large for the model backend.")
    if status in (400, 422):
        if message is not None and any(p.fullmatch(message) for p in CONTEXT_LENGTH_MESSAGES):
            return InvalidRequest(message, param="messages", code="context_length_exceeded")
        return InvalidRequest(
            message or f"The model backend rejected the request (HTTP {status}).", param=param
        )
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
    return BackendError(f"The model backend failed (HTTP {status}).")


def in_band_error(payload: bytes) -> bytes:
    """An error event's JSON from a backend (`{"error": {..., "code": 503}}`) in OpenAI's
    shape: every key present, `code` a string or null; the backend's message only where it is a
    known one."""
    raw_message, kind, param = _error_fields(payload)
    error = ErrorObject(
        message=client_message(raw_message) or "The model backend failed while answering.",
        type=kind if kind in ("invalid_request_error", "server_error") else "server_error",
        param=_param(param),
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
    message, _, backend_param = _error_fields(payload)
    return NotFound(
        client_message(message) or "The model backend found no such resource.",
        param=_param(backend_param) or param,
    )
