"""The spec validator accepts what OpenAI sends and rejects what breaks the SDKs."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

import pytest

from tests.conformance.validator import (
    SPEC_PATH,
    assert_stream_valid,
    assert_valid,
    conformance,
    rewrite_nullable,
    sse_data,
)
from warmgate.proxy import errors
from warmgate.proxy.answers.base64_vectors import floats_to_base64


def chat_completion(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1694268190,
        "model": "demo",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
    body.update(changes)
    return body


def test_a_chat_completion_as_openai_sends_it_is_valid() -> None:
    assert_valid("CreateChatCompletionResponse", chat_completion())


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"created": 1694268190.5}, "created"),
        ({"object": "chat.completion.chunk"}, "object"),
        ({"id": 7}, "id"),
    ],
)
def test_a_chat_completion_with_a_wrong_field_is_rejected(
    change: dict[str, Any], fragment: str
) -> None:
    problems = conformance().errors("CreateChatCompletionResponse", chat_completion(**change))
    assert any(fragment in problem for problem in problems), problems


def test_a_chat_completion_without_created_is_rejected() -> None:
    body = chat_completion()
    del body["created"]
    with pytest.raises(AssertionError, match="'created' is a required property"):
        assert_valid("CreateChatCompletionResponse", body)


def test_an_unknown_finish_reason_is_rejected() -> None:
    body = chat_completion()
    body["choices"][0]["finish_reason"] = "abort"
    assert conformance().errors("CreateChatCompletionResponse", body)


def test_stream_chunks_with_null_finish_reason_are_valid_and_done_is_skipped() -> None:
    first = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "demo",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ],
        "usage": None,
    }
    usage = {
        **first,
        "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    stream = f"data: {json.dumps(first)}\n\ndata:{json.dumps(usage)}\r\n\r\ndata: [DONE]\n\n"
    chunks = assert_stream_valid("CreateChatCompletionStreamResponse", stream)
    assert [chunk["choices"] == [] for chunk in chunks] == [False, True]


def test_the_nullable_rewrite_is_what_makes_a_first_chunk_valid() -> None:
    node = {"type": "string", "nullable": True, "enum": ["stop"]}
    assert rewrite_nullable({"a": [node]}) == {
        "a": [{"anyOf": [{"type": "string", "enum": ["stop"]}, {"type": "null"}]}]
    }


def test_sse_payloads_are_split_on_blank_lines_and_joined_across_data_lines() -> None:
    stream = b': ping\n\nevent: x\ndata: {"a":\ndata: 1}\n\ndata: [DONE]\n\n'
    assert list(sse_data(stream)) == ['{"a":\n1}', "[DONE]"]


def test_embeddings_in_float_and_in_base64_are_both_valid() -> None:
    def response(vector: list[float] | str) -> dict[str, Any]:
        return {
            "object": "list",
            "model": "demo",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }

    assert_valid("CreateEmbeddingResponse", response([0.5, -1.0]))
    assert_valid("CreateEmbeddingResponse", response(floats_to_base64([0.5, -1.0])))
    assert conformance().errors("CreateEmbeddingResponse", response(7))  # type: ignore[arg-type]


def test_a_completion_stream_chunk_needs_the_allowlisted_stream_schema() -> None:
    chunk = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "demo",
        "choices": [{"index": 0, "text": "hi", "logprobs": None, "finish_reason": None}],
    }
    assert_valid("CreateCompletionStreamResponse", chunk)
    assert conformance().errors("CreateCompletionResponse", chunk)


def test_models_list_and_model_validate() -> None:
    model = {"id": "org/name", "object": "model", "created": 0, "owned_by": "warmgate"}
    assert_valid("Model", model)
    assert_valid("ListModelsResponse", {"object": "list", "data": [model]})
    assert conformance().errors("Model", {"id": "x", "object": "model"})


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidRequest("bad", param="temperature", code="decimal_above_max_value"),
        errors.InvalidApiKey("no key"),
        errors.ModelNotFound("no model"),
        errors.PayloadTooLarge("too big"),
        errors.BackendError("backend failed"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_every_gateway_error_body_is_a_valid_error_response(error: errors.GatewayError) -> None:
    assert_valid("ErrorResponse", json.loads(error.to_json()))


@pytest.mark.parametrize(
    "body",
    [
        {"error": "Unauthorized"},
        {"detail": [{"loc": ["body", "temperature"], "msg": "too big"}]},
        {"error": {"message": "x", "type": "invalid_request_error", "code": 400, "param": None}},
        {"error": {"message": "x", "type": "invalid_request_error"}},
    ],
    ids=["flat", "fastapi-422", "integer-code", "missing-param-and-code"],
)
def test_error_bodies_that_break_the_sdks_are_rejected(body: dict[str, Any]) -> None:
    assert conformance().errors("ErrorResponse", body)


def test_an_unknown_schema_name_is_an_error_not_a_pass() -> None:
    with pytest.raises(KeyError, match="NoSuchSchema"):
        assert_valid("NoSuchSchema", {})


def test_the_bundled_spec_is_the_pinned_official_document() -> None:
    digest = hashlib.sha256(gzip.decompress(SPEC_PATH.read_bytes())).hexdigest()
    assert digest == "bbfd19abcde0e7412da99378deb2a959ccdd3a812f97c9e35901921e8e973f9a"
