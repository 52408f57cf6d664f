"""A `multipart/form-data` body read in place: each part's headers and the byte range of its value.

Nothing is copied: a part's value is an (start, end) range into the one body buffer, so a large
upload stays a single allocation from the socket to the backend. Edits splice new values into
the original bytes and leave every other part, header and boundary untouched.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import msgspec

from warmgate.proxy.errors import InvalidRequest

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_DISPOSITION_PARAM = re.compile(r';\s*([a-zA-Z*]+)="((?:[^"\\]|\\.)*)"|;\s*([a-zA-Z*]+)=([^;\s]+)')
_HEAD_END = b"\r\n\r\n"


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """One form field: its name, filename (file parts), content type and value range."""

    name: str
    filename: str | None
    content_type: str | None
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a `multipart/form-data` content type, None for any other type."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        return None
    match = _BOUNDARY.search(content_type)
    if match is None:
        return None
    return (match.group(1) or match.group(2)).encode("latin-1")


def _disposition(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for quoted_key, quoted, bare_key, bare in _DISPOSITION_PARAM.findall(value):
        if quoted_key:
            params[quoted_key.lower()] = quoted.replace('\\"', '"')
        else:
            params[bare_key.lower()] = bare
    return params


def _malformed() -> InvalidRequest:
    return InvalidRequest(
        "The request body is not valid multipart/form-data.", param=None, code="invalid_body"
    )


def parse_parts(body: bytes | bytearray, boundary: bytes) -> list[Part]:
    """Every part of the body, in order; InvalidRequest when the framing is broken."""
    delimiter = b"--" + boundary
    position = body.find(delimiter)
    if position == -1:
        raise _malformed()
    parts: list[Part] = []
    next_delimiter = b"\r\n" + delimiter
    while True:
        after = position + len(delimiter)
        if body.startswith(b"--", after):  # the closing delimiter
            return parts
        if not body.startswith(b"\r\n", after):
            raise _malformed()
        head_start = after + 2
        head_end = body.find(_HEAD_END, head_start)
        if head_end == -1:
            raise _malformed()
        value_start = head_end + 4
        value_end = body.find(next_delimiter, value_start)
        if value_end == -1:
            raise _malformed()
        parts.append(_part(body[head_start:head_end], value_start, value_end))
        position = value_end + 2


def _part(head: bytes | bytearray, start: int, end: int) -> Part:
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    for line in head.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-disposition":
            params = _disposition(value)
            name = params.get("name")
            filename = params.get("filename")
            extended = params.get("filename*")  # RFC 5987: UTF-8''percent-encoded
            if extended is not None:
                filename = unquote(extended.split("'", 2)[-1])
        elif key == "content-type":
            content_type = value.strip().lower()
    if name is None:
        raise _malformed()
    return Part(name=name, filename=filename, content_type=content_type, start=start, end=end)


def splice(body: bytes | bytearray, edits: list[tuple[Part, bytes]]) -> bytes | bytearray:
    """`body` with the values of the given parts replaced; every other byte unchanged.

    A `bytearray` body (the gateway's own receive buffer) is edited in place, so a large
    upload is never copied; `bytes` get one new buffer.
    """
    if not edits:
        return body
    if isinstance(body, bytearray):
        for part, value in sorted(edits, key=lambda edit: edit[0].start, reverse=True):
            body[part.start : part.end] = value
        return body
    view = memoryview(body)
    pieces: list[bytes | memoryview] = []
    position = 0
    for part, value in sorted(edits, key=lambda edit: edit[0].start):
        pieces += [view[position : part.start], value]
        position = part.end
    pieces.append(view[position:])
    return b"".join(pieces)
