"""What comes back from a backend, made OpenAI's: response ids, usage, error bodies.

SGLang answers with its own request id (32 hex, no `chatcmpl-` prefix), flat error bodies
(`{"object": "error", "message", "type", "code": <int>}`), `{"error": "Unauthorized"}` for a
wrong backend key, and in-band `data: {"error": ...}` events on a 200 stream. Here each becomes
what the OpenAI SDKs expect. Only small parts of a body are decoded (its `id` and `usage`);
everything else is passed on byte for byte.
"""

from __future__ import annotations

from typing import Any

import msgspec

from warmgate.proxy.errors import (
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


_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_choices = msgspec.json.Decoder(list[dict[str, Any]])
_usage = msgspec.json.Decoder(dict[str, Any])
# Keys SGLang sends as null where OpenAI's schema has no null: dropped, as OpenAI omits them.
_NOT_NULLABLE_MESSAGE_KEYS = ("tool_calls", "function_call", "annotations")
_NOT_NULLABLE_USAGE_KEYS = ("prompt_tokens_details", "completion_tokens_details")


# The same, as bytes patterns, for stream chunks (never decoded whole): a key whose value is
# null, with the comma that joined it to its neighbour.
def _null_patterns(*keys: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((b'"' + key + b'":null,', b',"' + key + b'":null') for key in keys)


_NULL_ROLE = _null_patterns(b"role")
_NULL_USAGE = _null_patterns(b"usage")
_NULL_TOOL_KEYS = _null_patterns(b"tool_calls", b"function_call", b"id", b"type", b"name")


def _strip(event: bytes, patterns: tuple[tuple[bytes, bytes], ...]) -> bytes:
    for joined_after, joined_before in patterns:
        if joined_after in event:
            event = event.replace(joined_after, b"")
        if joined_before in event:
            event = event.replace(joined_before, b"")
    return event


def fix_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """A usage object without the null `*_details` SGLang sends (not nullable in the spec)."""
    for key in _NOT_NULLABLE_USAGE_KEYS:
        if key in usage and usage[key] is None:
            del usage[key]
    return usage


def fix_chunk(event: bytes) -> bytes:
    """A stream chunk without SGLang's `"role": null` in deltas, and without `"id"`, `"type"`
    and `"name"` null in tool-call deltas after the first (the spec has no null there; OpenAI
    omits them). A chunk's own `id` is never null, and a key inside a JSON string has its
    quotes escaped, so these byte patterns match only the keys meant. Two scans suffice for
    the usual chunk, which has neither."""
    if b'"role":null' in event:
        event = _strip(event, _NULL_ROLE)
    if b"_call" in event:
        event = _strip(event, _NULL_TOOL_KEYS)
    return event


def strip_null_usage(event: bytes) -> bytes:
    """A legacy completion chunk without `"usage": null` (not nullable in the spec)."""
    return _strip(event, _NULL_USAGE)


def normalize_body(
    payload: bytes, response_id: str | None, model: str | None = None
) -> tuple[bytes, ResponseHead]:
    """A non-streamed chat or completion body in OpenAI's shape: our response id, the public
    model name (the backend echoes the served name it was sent), every
    message with its `refusal`, no null where the spec allows none. Only the top level is
    decoded; fields other than `id`, `choices` and `usage` keep their bytes."""
    try:
        fields = _fields.decode(payload)
    except msgspec.DecodeError:
        return payload, ResponseHead()
    head = ResponseHead()
    if response_id is not None and "id" in fields:
        fields["id"] = msgspec.Raw(_encoder.encode(response_id))
    if model is not None and "model" in fields:
        fields["model"] = msgspec.Raw(_encoder.encode(model))
    raw_usage = fields.get("usage")
    if raw_usage is not None:
        try:
            usage = fix_usage(_usage.decode(raw_usage))
            head.usage = msgspec.convert(usage, CompletionUsage)
            fields["usage"] = msgspec.Raw(_encoder.encode(usage))
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
    raw_choices = fields.get("choices")
    if raw_choices is not None:
        try:
            choices = _choices.decode(raw_choices)
        except msgspec.DecodeError:
            choices = []
        changed = False
        for choice in choices:
            message = choice.get("message")
            if isinstance(message, dict):
                changed = True
                message.setdefault("refusal", None)
                for key in _NOT_NULLABLE_MESSAGE_KEYS:
                    if key in message and message[key] is None:
                        del message[key]
        if changed:
            fields["choices"] = msgspec.Raw(_encoder.encode(choices))
    return _encoder.encode(fields), head


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
