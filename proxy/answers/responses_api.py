"""The relay of a Responses API stream: `event:` lines kept, usage read, the end recognised.

Unlike chat streams, a Responses stream names each event (`event: response.output_text.delta`)
and ends with `response.completed` (or `.incomplete` / `.failed`), not `[DONE]`. Events pass
through byte for byte; the relay decodes only the first event (the response id, which binds
the response to its backend) and the final one (usage, for the ledger). A stream that breaks
off gets a spec-shaped `error` event that the SDKs also raise on.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from warmgate.proxy.answers.completions import CompletionUsage, PromptTokensDetails, unreadable
from warmgate.proxy.answers.failures import in_band_error
from warmgate.proxy.answers.sse import LineEnds, held_event_fits
from warmgate.proxy.errors import ErrorResponse, GatewayError

FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_SEPARATOR = b"\n\n"


class InputTokensDetails(msgspec.Struct):
    cached_tokens: int = 0


class ResponseUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: InputTokensDetails | None = None


class ResponseHead(msgspec.Struct):
    id: str | None = None
    status: str | None = None
    usage: ResponseUsage | None = None


class StreamEvent(msgspec.Struct):
    type: str | None = None
    sequence_number: int | None = None
    response: ResponseHead | None = None
    error: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


_event = msgspec.json.Decoder(StreamEvent)
_error_response = msgspec.json.Decoder(ErrorResponse)
_head = msgspec.json.Decoder(ResponseHead)
_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()


def completion_usage(usage: ResponseUsage) -> CompletionUsage:
    """A Responses usage in the gateway's accounting shape."""
    cached = usage.input_tokens_details.cached_tokens if usage.input_tokens_details else 0
    return CompletionUsage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )


# SGLang dumps `"user": null` and (until a response completes) `"usage": null` in its
# Responses; OpenAI's schema allows these members to be absent but not null. Inside JSON
# strings quotes are escaped, so these bytes can only be such members.
_UNSET_MEMBERS = tuple(
    pattern
    for key in (b"user", b"usage")
    for pattern in (
        b',"' + key + b'":null',
        b'"' + key + b'":null,',
        b', "' + key + b'": null',
        b'"' + key + b'": null, ',
    )
)


def drop_unset_nulls(payload: bytes) -> bytes:
    """The payload without SGLang's null `user` and `usage` members (absent to OpenAI)."""
    if b'":null' not in payload and b'": null' not in payload:
        return payload
    for pattern in _UNSET_MEMBERS:
        payload = payload.replace(pattern, b"")
    return payload


def public_model(payload: bytes, model_names: tuple[str, str] | None) -> bytes:
    """`payload` naming the public model where the backend echoed the served name it was sent
    (`model_names` is (served, public)). Unescaped quotes only occur around JSON members, so
    the bytes `"model":"<served>"` can only be a `model` member."""
    if model_names is None or model_names[0] == model_names[1]:
        return payload
    served, public = (_encoder.encode(name) for name in model_names)
    for key in (b'"model":', b'"model": '):
        payload = payload.replace(key + served, key + public)
    return payload


def read_response(payload: bytes) -> ResponseHead:
    """The id, status and usage of a `Response` body, which must be a JSON object (else the
    backend's failure, `unreadable()`); an empty head when its members are not as expected."""
    try:
        return _head.decode(payload)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, RecursionError):
        raise unreadable() from None
    try:
        _object.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        raise unreadable() from None
    return ResponseHead()


def _error_event(
    message: str, kind: str, param: str | None, code: str | None, sequence_number: int
) -> bytes:
    detail = {"message": message, "type": kind, "param": param, "code": code}
    payload = {
        "type": "error",
        "code": code,
        "message": message,
        "param": param,
        "sequence_number": sequence_number,
        "error": detail,
    }
    return b"event: error\ndata: " + _encoder.encode(payload) + _SEPARATOR


def error_event(error: GatewayError, sequence_number: int) -> bytes:
    """A `ResponseErrorEvent` that also carries OpenAI's `error` object (the SDKs raise on it)."""
    return _error_event(
        error.message, error.type, error.param, error.instance_code, sequence_number
    )


def _fields(block: bytes) -> tuple[bytes, bytes]:
    """(event name, data) of one event block."""
    name = payload = b""
    for line in block.split(b"\n"):
        if line.startswith(b"event:"):
            name = line[6:].strip()
        elif line.startswith(b"data:"):
            payload = line[5:].lstrip(b" ")
    return name, payload


class ResponsesStreamRelay:
    """Feed it the backend's bytes; it returns the complete events for the client.

    After the stream: `response_id`, `usage`, `token_chunks` (text/argument deltas),
    `complete` (a final event was seen), `failed` (the stream ended in an error).
    `on_response_id` is called once, as soon as the response's id is seen.
    """

    __slots__ = (
        "_buffer",
        "_last_sequence",
        "_line_ends",
        "_model_names",
        "_on_response_id",
        "complete",
        "failed",
        "response_id",
        "token_chunks",
        "usage",
    )

    def __init__(
        self,
        model_names: tuple[str, str] | None = None,
        *,
        on_response_id: Callable[[str], None] | None = None,
    ) -> None:
        """`model_names`: (served, public) when they differ, so events name the public model."""
        self._model_names = model_names
        self._on_response_id = on_response_id
        self._buffer = b""
        self._line_ends = LineEnds()
        self._last_sequence = -1
        self.response_id: str | None = None
        self.usage: CompletionUsage | None = None
        self.token_chunks = 0
        self.complete = False
        self.failed = False

    def feed(self, chunk: bytes) -> bytes:
        line_ends = self._line_ends
        if line_ends.after_cr or b"\r" in chunk:  # LF-framed streams pay one scan here
            chunk = line_ends(chunk)
        data = self._buffer + chunk if self._buffer else chunk
        end = data.rfind(_SEPARATOR)
        if end == -1:
            held_event_fits(data)
            self._buffer = data
            return b""
        self._buffer = data[end + 2 :]
        out = [self._event(block) for block in data[:end].split(_SEPARATOR) if block.strip()]
        return b"".join(out)

    def _event(self, block: bytes) -> bytes:
        name, payload = _fields(block)
        if not payload:
            return b""  # comments and keep-alives carry nothing for the client
        if payload.startswith(b"[DONE]"):
            self.complete = True
            return b""
        try:
            event = _event.decode(payload)
        except (msgspec.DecodeError, RecursionError):
            return b""
        kind = event.type or name.decode("utf-8", "replace")
        self._observe(event, kind)
        if bytes(event.error) != b"null":  # a backend's in-band error, in OpenAI's shape
            error = _error_response.decode(in_band_error(payload)).error
            sequence = event.sequence_number
            if sequence is None:
                sequence = self._last_sequence + 1
            return _error_event(error.message, error.type, error.param, error.code, sequence)
        if not name and kind:
            block = b"event: " + kind.encode() + b"\n" + block
        return public_model(drop_unset_nulls(block), self._model_names) + _SEPARATOR

    def _observe(self, event: StreamEvent, kind: str) -> None:
        if event.sequence_number is not None:
            self._last_sequence = event.sequence_number
        if bytes(event.error) != b"null" or kind == "error":
            self.failed = True
        elif kind.endswith(".delta"):
            self.token_chunks += 1
        if event.response is not None:
            if self.response_id is None and event.response.id:
                self.response_id = event.response.id
                if self._on_response_id is not None:
                    self._on_response_id(event.response.id)
            if kind in FINAL_EVENTS:
                self.complete = True
                if event.response.usage is not None:
                    self.usage = completion_usage(event.response.usage)

    def fail(self, error: GatewayError) -> bytes:
        """The end of a stream that broke off: one error event (none after a final event)."""
        if self.complete or self.failed:
            return b""
        self.failed = True
        return error_event(error, self._last_sequence + 1)
