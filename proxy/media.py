"""Media types: the one place the gateway spells them, and the one test for JSON bodies."""

from __future__ import annotations

JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"
CSV = "text/csv; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
SUBRIP = "application/x-subrip; charset=utf-8"
WEBVTT = "text/vtt; charset=utf-8"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
MULTIPART_FORM = "multipart/form-data"


def is_json(content_type: str | None) -> bool:
    """`application/json` or a `+json` type, parameters (`; charset=utf-8`) ignored."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or media.endswith("+json")
