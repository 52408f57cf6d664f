"""Every body the SDK received from the rest of the surface, checked against the spec."""

from __future__ import annotations

import json

from tests.conformance.validator import assert_valid, sse_data
from tests.gateway.harness import Exchange

TEXT_TYPES = ("text/plain", "text/vtt", "application/x-subrip")


def _check_responses_stream(body: bytes) -> None:
    """Named events (`event:` + `data:`), increasing sequence numbers, each a stream event."""
    last = -1
    for block in body.split(b"\n\n"):
        if not block:
            continue
        lines = block.split(b"\n")
        assert lines[0].startswith(b"event: "), block[:200]
        assert lines[1].startswith(b"data: "), block[:200]
    for payload in sse_data(body):
        event = json.loads(payload)
        assert_valid("ResponseStreamEvent", event)
        assert event["sequence_number"] > last
        last = event["sequence_number"]


def check_exchange(exchange: Exchange) -> None:
    body = bytes(exchange.body)
    assert exchange.headers.get("x-request-id"), f"no x-request-id on {exchange.path}"
    if exchange.status >= 400:
        assert exchange.content_type.startswith("application/json")
        assert_valid("ErrorResponse", json.loads(body))
        return
    if exchange.content_type.startswith("text/event-stream"):
        if exchange.closed and body.endswith(b"\n\n"):
            _check_responses_stream(body)
        return
    if exchange.content_type.startswith(TEXT_TYPES):
        assert exchange.path == "/v1/audio/transcriptions"
        return
    assert exchange.content_type.startswith("application/json"), exchange.content_type
    document = json.loads(body)
    if exchange.path.startswith("/v1/responses"):
        assert_valid("Response", document)
    elif exchange.path == "/v1/images/generations":
        assert_valid("ImagesResponse", document)
    elif exchange.path == "/v1/audio/transcriptions":
        verbose = "segments" in document or "duration" in document
        schema = (
            "CreateTranscriptionResponseVerboseJson"
            if verbose
            else "CreateTranscriptionResponseJson"
        )
        assert_valid(schema, document)
    else:
        raise AssertionError(f"no schema for {exchange.path}")
