"""Chat and completion answers made OpenAI's: our response id, the public model name, usage.

SGLang answers with its own request id (32 hex, no `chatcmpl-` prefix), the served model name,
and nulls where OpenAI's schema allows none. Here a whole answer and each stream chunk become
what the OpenAI SDKs expect. Only small parts of a body are decoded (its `id`, `usage` and
`choices`); everything else is passed on byte for byte.
"""

from __future__ import annotations

from typing import Any

import msgspec

from warmgate.proxy.errors import BackendError


def unreadable() -> BackendError:
    """The 502 for a 200 whose body is not the JSON object the route answers with (an HTML
    page from a proxy in between, a truncated body): never relayed as success, never billed."""
    return BackendError("The model backend's answer could not be read.")


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
_encoder = msgspec.json.Encoder()


def read_head(payload: bytes) -> ResponseHead:
    """`id` and `usage` of a JSON object; an empty head when the payload is not one."""
    try:
        return _head.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return ResponseHead()


_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


def answer_head(payload: bytes) -> ResponseHead:
    """`id` and `usage` of a whole answer, which must be a JSON object (else `unreadable()`);
    an empty head when the object's `id` or `usage` are not of the expected types. The same
    one pass over the payload as `read_head` unless the payload is not what it should be."""
    try:
        return _head.decode(payload)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, RecursionError):
        raise unreadable() from None
    try:  # valid JSON, but not the head expected: is it an object at all?
        _fields.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        raise unreadable() from None
    return ResponseHead()


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


# A chat choice's logprobs as SGLang streams them (content only); OpenAI's schema also requires
# the `refusal` list, null when the model refused nothing.
_CHAT_LOGPROBS = b'"logprobs":{"content":'
_CHAT_LOGPROBS_WITH_REFUSAL = b'"logprobs":{"refusal":null,"content":'


def fix_chunk(event: bytes) -> bytes:
    """A stream chunk without SGLang's `"role": null` in deltas, and without `"id"`, `"type"`
    and `"name"` null in tool-call deltas after the first (the spec has no null there; OpenAI
    omits them); a chat choice's logprobs with OpenAI's required `refusal`. A chunk's own `id`
    is never null, and a key inside a JSON string has its quotes escaped, so these byte
    patterns match only the keys meant. Three scans suffice for the usual chunk, which has
    none of them."""
    if b'"role":null' in event:
        event = _strip(event, _NULL_ROLE)
    if b"_call" in event:
        event = _strip(event, _NULL_TOOL_KEYS)
    if _CHAT_LOGPROBS in event:
        event = event.replace(_CHAT_LOGPROBS, _CHAT_LOGPROBS_WITH_REFUSAL)
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
    decoded; fields other than `id`, `choices` and `usage` keep their bytes. A payload that is
    not a JSON object is `unreadable()`."""
    try:
        fields = _fields.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        raise unreadable() from None
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
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass
    raw_choices = fields.get("choices")
    if raw_choices is not None:
        try:
            choices = _choices.decode(raw_choices)
        except (msgspec.DecodeError, RecursionError):
            choices = []
        if _normalize_choices(choices):
            fields["choices"] = msgspec.Raw(_encoder.encode(choices))
    return _encoder.encode(fields), head


def _normalize_choices(choices: list[dict[str, Any]]) -> bool:
    """Chat choices in OpenAI's shape, in place: every message with its `refusal`, logprobs
    with both lists, no null where the spec has none. True if there was a chat message."""
    changed = False
    for choice in choices:
        message = choice.get("message")
        if not isinstance(message, dict):
            continue  # a legacy completion's choice: nothing to change
        changed = True
        message.setdefault("refusal", None)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            logprobs.setdefault("refusal", None)
        for key in _NOT_NULLABLE_MESSAGE_KEYS:
            if key in message and message[key] is None:
                del message[key]
    return changed
