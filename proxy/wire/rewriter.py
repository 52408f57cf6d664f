"""Byte-level edits of a request body on its way upstream.

Only two things ever change: the top-level `model` (alias → served name) and
`stream_options.include_usage` (forced true so every stream reports usage). The body is
scanned at the top level only: strings and nested values are skipped with C-speed regular
expressions, and the edits are spliced into the original bytes, so every other byte
(unknown fields, `extra_body` extras, whitespace, key order) reaches the backend unchanged.
Should the scan ever fail, a minimal re-encode keeps every other value as raw JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import msgspec

from warmgate.proxy.wire.rejection import too_deep

_WS = re.compile(rb"[ \t\n\r]*")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_SCALAR = re.compile(rb"[^,}\]\s]+")
_NESTING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_WHITESPACE = frozenset(b" \t\n\r")
_BACKSLASH = ord("\\")
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE = ord('"')
_BRACE_OPEN = ord("{")
_BRACE_CLOSE = ord("}")
_COLON = ord(":")
_COMMA = ord(",")

INCLUDE_USAGE = b'{"include_usage":true}'

_raw_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_key = msgspec.json.Decoder(str)
_encoder = msgspec.json.Encoder()


class _ScanError(ValueError):
    """The scanner met something it does not expect in valid JSON."""


class Member(msgspec.Struct, frozen=True):
    """One `"key": value` of a JSON object, with byte offsets into the body."""

    key: str
    value_start: int
    value_end: int


def _value_end(body: bytes, start: int) -> int:
    first = body[start]
    if first == _QUOTE:
        string = _STRING.match(body, start)
        if string is None:
            raise _ScanError(start)
        return string.end()
    if first in _OPEN:
        depth = 0
        for token in _NESTING.finditer(body, start):
            char = body[token.start()]
            if char in _OPEN:
                depth += 1
            elif char in _CLOSE:
                depth -= 1
                if depth == 0:
                    return token.end()
        raise _ScanError(start)
    scalar = _SCALAR.match(body, start)
    if scalar is None:
        raise _ScanError(start)
    return scalar.end()


def _skip_ws(body: bytes, pos: int) -> int:
    match = _WS.match(body, pos)
    return pos if match is None else match.end()


def members(body: bytes, start: int) -> Iterator[Member]:
    """The members of the JSON object whose `{` is at `start`, in order (duplicates kept)."""
    if start >= len(body) or body[start] != _BRACE_OPEN:
        raise _ScanError(start)
    pos = _skip_ws(body, start + 1)
    if pos < len(body) and body[pos] == _BRACE_CLOSE:
        return
    while True:
        key_match = _STRING.match(body, pos)
        if key_match is None:
            raise _ScanError(pos)
        raw_key = key_match.group()
        key = _key.decode(raw_key) if b"\\" in raw_key else raw_key[1:-1].decode()
        pos = _skip_ws(body, key_match.end())
        if pos >= len(body) or body[pos] != _COLON:
            raise _ScanError(pos)
        value_start = _skip_ws(body, pos + 1)
        value_end = _value_end(body, value_start)
        yield Member(key, value_start, value_end)
        pos = _skip_ws(body, value_end)
        if pos >= len(body):
            raise _ScanError(pos)
        if body[pos] == _BRACE_CLOSE:
            return
        if body[pos] != _COMMA:
            raise _ScanError(pos)
        pos = _skip_ws(body, pos + 1)


def _members_by_length(
    body: bytes, start: int, fields: dict[str, msgspec.Raw]
) -> list[Member] | None:
    """The top-level members, found with msgspec's view of each value (no tokenizing).

    msgspec decodes the object into raw values (no value is built); the walk then only steps
    over keys and separators byte by byte, jumping each value by its raw length. None when the
    layout does not line up (duplicate keys, escaped keys), for the exact scanner to handle.
    """
    found: list[Member] = []
    pos = start + 1
    last = len(fields) - 1
    for index, (key, raw) in enumerate(fields.items()):
        while body[pos] in _WHITESPACE:
            pos += 1
        if body[pos] != _QUOTE:
            return None
        key_end = body.find(b'"', pos + 1)
        if body[key_end - 1] == _BACKSLASH or body[pos + 1 : key_end].decode() != key:
            return None
        pos = key_end + 1
        while body[pos] in _WHITESPACE:
            pos += 1
        colon = pos
        pos += 1
        while body[pos] in _WHITESPACE:
            pos += 1
        value_start = pos
        pos += len(raw)
        edge = memoryview(raw)
        if body[colon] != _COLON or body[value_start] != edge[0] or body[pos - 1] != edge[-1]:
            return None
        found.append(Member(key, value_start, pos))
        while body[pos] in _WHITESPACE:
            pos += 1
        if body[pos] == _BRACE_CLOSE:
            return found if index == last else None
        if body[pos] != _COMMA:
            return None
        pos += 1
    return None


def _usage_edits(body: bytes, options: Member) -> list[tuple[int, int, bytes]]:
    if body[options.value_start] != _BRACE_OPEN:  # null (or not an object): replace it
        return [(options.value_start, options.value_end, INCLUDE_USAGE)]
    inner = list(members(body, options.value_start))
    flags = [member for member in inner if member.key == "include_usage"]
    if flags:
        return [(flag.value_start, flag.value_end, b"true") for flag in flags]
    at = options.value_start + 1
    return [(at, at, b'"include_usage":true' + (b"," if inner else b""))]


def _splice(body: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    view = memoryview(body)
    parts: list[bytes | memoryview] = []
    pos = 0
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0]):
        parts.append(view[pos:start])
        parts.append(replacement)
        pos = end
    parts.append(view[pos:])
    return b"".join(parts)


def _splice_edits(body: bytes, replacements: dict[str, bytes], include_usage: bool) -> bytes:
    start = _skip_ws(body, 0)
    fields = _raw_object.decode(body)
    if not replacements and include_usage and fields and "stream_options" not in fields:
        # The common case (a stream without stream_options, no alias): one insertion.
        return insert_member(body, b'"stream_options":' + INCLUDE_USAGE)
    top = _members_by_length(body, start, fields)
    if top is None:
        top = list(members(body, start))
    edits: list[tuple[int, int, bytes]] = []
    inserts: list[bytes] = []
    for key, value in replacements.items():
        found = [member for member in top if member.key == key]
        edits += [(member.value_start, member.value_end, value) for member in found]
        if not found:
            inserts.append(_encoder.encode(key) + b":" + value)
    if include_usage:
        options = [member for member in top if member.key == "stream_options"]
        for member in options:
            edits += _usage_edits(body, member)
        if not options:
            inserts.append(b'"stream_options":' + INCLUDE_USAGE)
    if inserts:
        joined = b",".join(inserts) + (b"," if top else b"")
        edits.append((start + 1, start + 1, joined))
    return _splice(body, edits) if edits else body


def _reencode(body: bytes, replacements: dict[str, bytes], include_usage: bool) -> bytes:
    fields = _raw_object.decode(body)
    for key, value in replacements.items():
        fields[key] = msgspec.Raw(value)
    if include_usage:
        options_raw = fields.get("stream_options")
        options = _raw_object.decode(options_raw) if options_raw is not None else {}
        options["include_usage"] = msgspec.Raw(b"true")
        fields["stream_options"] = msgspec.Raw(_encoder.encode(options))
    return _encoder.encode(fields)


def insert_member(body: bytes, member: bytes) -> bytes:
    """`body` (a validated JSON object with at least one member) with `member` (`"key":value`)
    added first; no pass over the body, one copy."""
    start = _skip_ws(body, 0)
    return _splice(body, [(start + 1, start + 1, member + b",")])


def rewrite_request(
    body: bytes,
    *,
    model: str | None = None,
    include_usage: bool = False,
    fields: Mapping[str, object] | None = None,
) -> bytes:
    """`body` with `model` replaced (when given), `stream_options.include_usage` set true (when
    asked) and each of `fields` (top-level key -> new value) set; every other byte unchanged.
    The body must already have been validated."""
    replacements = {key: _encoder.encode(value) for key, value in (fields or {}).items()}
    if model is not None:
        replacements["model"] = _encoder.encode(model)
    try:
        try:
            return _splice_edits(body, replacements, include_usage)
        except (_ScanError, IndexError, UnicodeDecodeError):
            return _reencode(body, replacements, include_usage)
    except RecursionError:
        # Validation passed a few stack frames higher up: a body at the recursion guard's edge.
        raise too_deep() from None
