"""The relay of a backend's server-sent events to the client, event by event as they arrive.

Per event the relay does byte operations only: it swaps the backend's response id for ours,
drops the usage chunk the client did not ask for (the backend is always asked for it, so every
stream can be accounted), turns in-band backend errors into OpenAI's error event, and keeps
OpenAI's framing: `data:` lines only, ending with `data: [DONE]`. It decodes just the first
event (for the backend's id) and the usage event (for the ledger).

A stream that ends without `[DONE]` is never passed off as complete: the client gets an error
event the SDKs raise on, so a cut stream cannot look like a short answer.

Lines may end as the SSE specification allows (LF, CR or CRLF, even split across chunks):
`LineEnds` makes them LF before anything else looks at them. An event may not grow past
MAX_EVENT_BYTES: a backend that never ends one breaks the stream off instead of filling memory.
"""

from __future__ import annotations

from typing import Any

import msgspec

from warmgate.proxy.answers.completions import (
    CompletionUsage,
    fix_chunk,
    fix_usage,
    read_head,
    strip_null_usage,
)
from warmgate.proxy.answers.failures import in_band_error
from warmgate.proxy.errors import GatewayError, StreamInterrupted

# The largest event held while waiting for its end (a Responses stream's final event holds the
# whole response).
MAX_EVENT_BYTES = 16 * 1024 * 1024
DONE = b"data: [DONE]\n\n"
_SEPARATOR = b"\n\n"
_DATA = b"data:"
_ERROR_START = b'{"error"'
_EMPTY_CHOICES = (b'"choices":[]', b'"choices": []')
# Events handled one by one: [DONE], in-band errors, and usage objects.
_SPECIAL_MARKERS = (b"[DONE]", _ERROR_START, b'"usage":{', b'"usage": {')
# A chunk carries generated tokens when one of these strings is followed by a non-empty value.
_TOKEN_MARKERS = (b'"content":"', b'"text":"', b'"arguments":"', b'"reasoning_content":"')
_encoder = msgspec.json.Encoder()
_chunk = msgspec.json.Decoder(dict[str, Any])


class LineEnds:
    """Makes a stream's CR and CRLF line ends LF, chunk by chunk: a CR that ends one chunk is
    a line end, and an LF that starts the next is then its other half."""

    __slots__ = ("after_cr",)

    def __init__(self) -> None:
        self.after_cr = False  # the last chunk ended with a CR

    def __call__(self, chunk: bytes) -> bytes:
        if self.after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self.after_cr = chunk.endswith(b"\r")
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk


def held_event_fits(buffer: bytes) -> None:
    """Raise StreamInterrupted when an unfinished event has grown past MAX_EVENT_BYTES."""
    if len(buffer) > MAX_EVENT_BYTES:
        raise StreamInterrupted("The model backend sent an event too large to relay.")


def _single_data_line(event: bytes) -> bytes:
    """An event of several lines as one `data:` line: its data lines joined (the specification
    joins them with LF, which in JSON is whitespace like a space); its `id:`, `event:`,
    `retry:` and comment lines are not part of OpenAI's framing."""
    values = [
        line[6:] if line.startswith(b"data: ") else line[5:]
        for line in event.split(b"\n")
        if line.startswith(_DATA)
    ]
    return b"data: " + b" ".join(values) if values else b""


def _quoted_model(name: str) -> bytes:
    return b'"model":' + _encoder.encode(name)


def _first_special(body: bytes) -> int:
    """Where the first event that needs handling on its own begins (`len(body)` if none)."""
    at = len(body)
    for marker in _SPECIAL_MARKERS:
        found = body.find(marker, 0, at)
        if found != -1:
            at = found
    if at == len(body):
        return at
    start = body.rfind(_SEPARATOR, 0, at)
    return 0 if start == -1 else start + 2


def _carries_tokens(payload: bytes) -> bool:
    for marker in _TOKEN_MARKERS:
        at = payload.find(marker)
        if at != -1 and payload[at + len(marker) : at + len(marker) + 1] != b'"':
            return True
    return False


def _fixed_usage_chunk(payload: bytes) -> bytes:
    try:
        chunk = _chunk.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return payload
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        fix_usage(usage)
    return _encoder.encode(chunk)


class SseRelay:
    """Feed it the backend's bytes as they come; it returns what the client is sent.

    After the stream: `usage` (from the backend's usage chunk), `token_chunks` (chunks from
    the first that carried generated text on: the delivered tokens when the client left before
    the usage chunk), `failed` (an error event was sent), `complete` (`[DONE]` seen).
    """

    __slots__ = (
        "_buffer",
        "_forward_usage",
        "_line_ends",
        "_models",
        "_new_id",
        "_old_id",
        "_response_id",
        "_swap",
        "complete",
        "failed",
        "token_chunks",
        "usage",
    )

    def __init__(
        self,
        response_id: str,
        *,
        forward_usage: bool,
        model_names: tuple[str, str] | None = None,
    ) -> None:
        """`model_names`: (served, public) when they differ, so chunks name the public model."""
        self._response_id = response_id
        self._forward_usage = forward_usage
        self._buffer = b""
        self._line_ends = LineEnds()
        self._old_id: bytes | None = None
        self._new_id = b'"' + response_id.encode() + b'"'
        self._swap = False
        self._models = (
            (_quoted_model(model_names[0]), _quoted_model(model_names[1]))
            if model_names is not None and model_names[0] != model_names[1]
            else None
        )
        self.usage: CompletionUsage | None = None
        self.token_chunks = 0
        self.failed = False
        self.complete = False

    def feed(self, chunk: bytes) -> bytes:
        """The client's bytes for one chunk of the backend's stream (complete events only).

        Ordinary events (deltas) are handled in bulk, a few scans over the whole chunk
        whatever the number of events in it; the special ones (usage, error, `[DONE]`, and
        the first event, which names the backend's id) one by one."""
        if self.complete:
            return b""
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
        body = data[: end + 2]
        first = b""
        if self._old_id is None:  # the first event names the backend's id: read it alone
            first_end = body.find(_SEPARATOR) + 2
            first = self._events(body[:first_end])
            body = body[first_end:]
            if not body or self.complete:
                return first
        cut = _first_special(body)
        if cut == 0:
            return first + self._events(body)
        bulk = self._bulk(body[:cut])
        rest = self._events(body[cut:]) if cut < len(body) else b""
        return first + bulk + rest if first or rest else bulk

    def _bulk(self, block: bytes) -> bytes:
        """Complete, ordinary `data:` events: the same edits as `_event`, on all at once.

        `block` ends with a blank line. It holds `events` events that begin with `data:`, each
        ending with a blank line; two line ends per event, and no more, mean that each is one
        `data:` line. (Two scans of the block; counting the blank lines too cost a third.)"""
        events = block.count(b"\n\ndata:") + 1
        if not block.startswith(_DATA) or block.count(b"\n") != 2 * events:
            return self._events(block)  # other lines among them: one by one
        if self._swap:
            block = block.replace(self._old_id or b"", self._new_id)
        if self._models is not None:
            block = block.replace(*self._models)
        if b'"usage":null' in block:
            block = strip_null_usage(block)
        if self.token_chunks:
            self.token_chunks += events
        elif _carries_tokens(block):
            self.token_chunks = events
        return fix_chunk(block)

    def _events(self, body: bytes) -> bytes:
        out: list[bytes] = []
        for event in body[:-2].split(_SEPARATOR):
            converted = self._event(event.strip(b"\r\n"))
            if converted:
                out.append(converted)
                if converted is DONE:
                    break
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        if b"\n" in event:
            event = _single_data_line(event)
        if not event.startswith(_DATA):
            return b""  # comments, `event:`/`id:` lines: not part of OpenAI's framing
        start = 6 if event.startswith(b" ", 5) else 5
        if event.startswith(b"[DONE]", start):
            self.complete = True
            return DONE
        if event.startswith(_ERROR_START, start):
            self.failed = True
            return b"data: " + in_band_error(event[start:]) + _SEPARATOR
        if self._old_id is None:
            upstream_id = read_head(event[start:]).id
            self._old_id = (b'"' + upstream_id.encode() + b'"') if upstream_id else b""
            self._swap = bool(self._old_id) and self._old_id != self._new_id
        if self._swap:
            event = event.replace(self._old_id, self._new_id, 1)
        if self._models is not None:
            event = event.replace(*self._models, 1)
        at = event.find(b'"usage"', start)
        if at != -1:
            value = event[at + 7 : at + 10]  # `:{"`, `: {`, `:nu`, `: n`
            if b"{" in value:
                return self._usage_event(event[start:])
            if b"n" in value:
                event = strip_null_usage(event)
        if self.token_chunks:
            self.token_chunks += 1
        elif _carries_tokens(event):
            self.token_chunks = 1
        return fix_chunk(event) + _SEPARATOR

    def _usage_event(self, payload: bytes) -> bytes:
        """The backend's usage chunk: read for the ledger, passed on only if the client asked."""
        head = read_head(payload)
        if head.usage is None:
            return fix_chunk(b"data: " + payload) + _SEPARATOR
        self.usage = head.usage
        if not self._forward_usage and any(m in payload for m in _EMPTY_CHOICES):
            return b""
        return b"data: " + _fixed_usage_chunk(payload) + _SEPARATOR

    def fail(self, error: GatewayError) -> bytes:
        """The end of a stream that broke off: an error event, then `[DONE]`."""
        if self.complete:
            return b""
        self.complete = True
        if self.failed:
            return DONE
        self.failed = True
        return error.to_event() + DONE

    @property
    def response_id(self) -> str:
        return self._response_id
