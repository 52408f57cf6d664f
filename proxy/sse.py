"""The relay of a backend's server-sent events to the client, event by event as they arrive.

Per event the relay does byte operations only: it swaps the backend's response id for ours,
drops the usage chunk the client did not ask for (the backend is always asked for it, so every
stream can be accounted), turns in-band backend errors into OpenAI's error event, and keeps
OpenAI's framing: `data:` lines only, ending with `data: [DONE]`. It decodes just the first
event (for the backend's id) and the usage event (for the ledger).

A stream that ends without `[DONE]` is never passed off as complete: the client gets an error
event the SDKs raise on, so a cut stream cannot look like a short answer.
"""

from __future__ import annotations

from typing import Any

import msgspec

from proxy.answers import (
    CompletionUsage,
    fix_chunk,
    fix_usage,
    in_band_error,
    read_head,
)
from proxy.errors import ErrorObject, ErrorResponse, GatewayError

DONE = b"data: [DONE]\n\n"
_SEPARATOR = b"\n\n"
_DATA = b"data:"
_ERROR_START = b'{"error"'
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
_EMPTY_CHOICES = (b'"choices":[]', b'"choices": []')
# A chunk carries generated tokens when one of these strings is followed by a non-empty value.
_TOKEN_MARKERS = (b'"content":"', b'"text":"', b'"arguments":"', b'"reasoning_content":"')
_encoder = msgspec.json.Encoder()
_chunk = msgspec.json.Decoder(dict[str, Any])


def _payload(event: bytes) -> bytes:
    """The JSON of a `data:` event (a single line, as OpenAI-compatible servers send)."""
    start = 6 if event[5:6] == b" " else 5
    return event[start:]


def _carries_tokens(payload: bytes) -> bool:
    for marker in _TOKEN_MARKERS:
        at = payload.find(marker)
        if at != -1 and payload[at + len(marker) : at + len(marker) + 1] != b'"':
            return True
    return False


def _fixed_usage_chunk(payload: bytes) -> bytes:
    try:
        chunk = _chunk.decode(payload)
    except msgspec.DecodeError:
        return payload
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        fix_usage(usage)
    return _encoder.encode(chunk)


def error_event(error: GatewayError) -> bytes:
    body = ErrorResponse(
        ErrorObject(
            message=error.message, type=error.type, param=error.param, code=error.instance_code
        )
    )
    return b"data: " + _encoder.encode(body) + _SEPARATOR


class SseRelay:
    """Feed it the backend's bytes as they come; it returns what the client is sent.

    After the stream: `usage` (from the backend's usage chunk), `token_chunks` (chunks that
    carried generated text), `failed` (an error event was sent), `complete` (`[DONE]` seen).
    """

    __slots__ = (
        "_buffer",
        "_forward_usage",
        "_new_id",
        "_old_id",
        "_response_id",
        "complete",
        "failed",
        "token_chunks",
        "usage",
    )

    def __init__(self, response_id: str, *, forward_usage: bool) -> None:
        self._response_id = response_id
        self._forward_usage = forward_usage
        self._buffer = b""
        self._old_id: bytes | None = None
        self._new_id = b'"' + response_id.encode() + b'"'
        self.usage: CompletionUsage | None = None
        self.token_chunks = 0
        self.failed = False
        self.complete = False

    def feed(self, chunk: bytes) -> bytes:
        """The client's bytes for one chunk of the backend's stream (complete events only)."""
        if self.complete:
            return b""
        data = self._buffer + chunk if self._buffer else chunk
        end = data.rfind(_SEPARATOR)
        if end == -1:
            self._buffer = data
            return b""
        self._buffer = data[end + 2 :]
        out: list[bytes] = []
        for event in data[:end].split(_SEPARATOR):
            converted = self._event(event.strip(b"\r\n"))
            if converted:
                out.append(converted)
                if converted is DONE:
                    break
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(_DATA):
            return b""  # comments, `event:`/`id:` lines: not part of OpenAI's framing
        payload = _payload(event)
        if payload.startswith(b"[DONE]"):
            self.complete = True
            return DONE
        if payload.startswith(_ERROR_START):
            self.failed = True
            return b"data: " + in_band_error(payload) + _SEPARATOR
        if self._old_id is None:
            upstream_id = read_head(payload).id
            self._old_id = (b'"' + upstream_id.encode() + b'"') if upstream_id else b""
        if self._old_id and self._old_id != self._new_id:
            event = event.replace(self._old_id, self._new_id, 1)
        if any(marker in payload for marker in _USAGE_MARKERS):
            head = read_head(payload)
            if head.usage is not None:
                self.usage = head.usage
                if not self._forward_usage and any(m in payload for m in _EMPTY_CHOICES):
                    return b""
                event = b"data: " + _fixed_usage_chunk(_payload(event))
        elif _carries_tokens(payload):
            self.token_chunks += 1
        return fix_chunk(event) + _SEPARATOR

    def fail(self, error: GatewayError) -> bytes:
        """The end of a stream that broke off: an error event, then `[DONE]`."""
        if self.complete:
            return b""
        self.complete = True
        if self.failed:
            return DONE
        self.failed = True
        return error_event(error) + DONE

    @property
    def response_id(self) -> str:
        return self._response_id
