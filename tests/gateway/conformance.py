"""Every body the SDK received, checked against the official OpenAI spec and OpenAI's framing."""

from __future__ import annotations

import json

from tests.conformance.validator import assert_valid, sse_data
from tests.gateway.harness import Exchange

JSON_SCHEMAS = {
    "/v1/chat/completions": "CreateChatCompletionResponse",
    "/v1/completions": "CreateCompletionResponse",
    "/v1/embeddings": "CreateEmbeddingResponse",
    "/v1/models": "ListModelsResponse",
}
STREAM_SCHEMAS = {
    "/v1/chat/completions": "CreateChatCompletionStreamResponse",
    "/v1/completions": "CreateCompletionStreamResponse",
}


def check_stream_framing(body: bytes) -> None:
    """`data:` lines only, each event ended by a blank line, the last one `data: [DONE]`."""
    assert body.endswith(b"data: [DONE]\n\n"), body[-200:]
    for event in body.split(b"\n\n")[:-1]:
        assert event.startswith(b"data: "), event[:200]
        assert b"\n" not in event, event[:200]


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
        check_stream_framing(body)
        schema = STREAM_SCHEMAS[exchange.path]
        for payload in sse_data(body):
            if payload == "[DONE]":
                continue
            chunk = json.loads(payload)
            assert_valid("ErrorResponse" if "error" in chunk else schema, chunk)
        return
    assert exchange.content_type.startswith("application/json"), exchange.content_type
    if exchange.path.startswith("/v1/models/"):
        assert_valid("Model", json.loads(body))
    elif exchange.path in JSON_SCHEMAS:
        assert_valid(JSON_SCHEMAS[exchange.path], json.loads(body))
