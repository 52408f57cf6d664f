"""Every body the SDK received, checked against the official OpenAI spec and OpenAI's framing:
the chat and legacy completions, embeddings and models, and the rest of the surface (responses,
images, audio transcriptions)."""

from __future__ import annotations

import json

from tests.conformance.validator import assert_valid, sse_data
from tests.support.recording import Exchange

JSON_SCHEMAS = {
    "/v1/chat/completions": "CreateChatCompletionResponse",
    "/v1/completions": "CreateCompletionResponse",
    "/v1/embeddings": "CreateEmbeddingResponse",
    "/v1/models": "ListModelsResponse",
    "/v1/images/generations": "ImagesResponse",
}
STREAM_SCHEMAS = {
    "/v1/chat/completions": "CreateChatCompletionStreamResponse",
    "/v1/completions": "CreateCompletionStreamResponse",
}
TEXT_TYPES = ("text/plain", "text/vtt", "application/x-subrip")
TRANSCRIPTIONS = "/v1/audio/transcriptions"


def check_stream_framing(body: bytes) -> None:
    """`data:` lines only, each event ended by a blank line, the last one `data: [DONE]`."""
    assert body.endswith(b"data: [DONE]\n\n"), body[-200:]
    for event in body.split(b"\n\n")[:-1]:
        assert event.startswith(b"data: "), event[:200]
        assert b"\n" not in event, event[:200]


def check_chunks(path: str, body: bytes) -> None:
    check_stream_framing(body)
    schema = STREAM_SCHEMAS[path]
    for payload in sse_data(body):
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        assert_valid("ErrorResponse" if "error" in chunk else schema, chunk)


def check_response_events(body: bytes) -> None:
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


def check_document(path: str, document: object) -> None:
    if path.startswith("/v1/models/"):
        assert_valid("Model", document)
    elif path.startswith("/v1/responses"):
        assert_valid("Response", document)
    elif path == TRANSCRIPTIONS:
        assert isinstance(document, dict)
        verbose = "segments" in document or "duration" in document
        schema = (
            "CreateTranscriptionResponseVerboseJson"
            if verbose
            else "CreateTranscriptionResponseJson"
        )
        assert_valid(schema, document)
    elif path in JSON_SCHEMAS:
        assert_valid(JSON_SCHEMAS[path], document)
    else:
        raise AssertionError(f"no schema for {path}")


def check_exchange(exchange: Exchange) -> None:
    body = bytes(exchange.body)
    assert exchange.headers.get("x-request-id"), f"no x-request-id on {exchange.path}"
    if exchange.status >= 400:
        assert exchange.content_type.startswith("application/json")
        assert_valid("ErrorResponse", json.loads(body))
        return
    if exchange.content_type.startswith("text/event-stream"):
        if not exchange.closed or not body.endswith(b"\n\n"):
            return  # the test left the stream on purpose: nothing complete to check
        if exchange.path.startswith("/v1/responses"):
            check_response_events(body)
        else:
            check_chunks(exchange.path, body)
        return
    if exchange.content_type.startswith(TEXT_TYPES):
        assert exchange.path == TRANSCRIPTIONS
        return
    assert exchange.content_type.startswith("application/json"), exchange.content_type
    check_document(exchange.path, json.loads(body))
