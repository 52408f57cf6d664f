"""SGLang's answers made OpenAI's, as pure functions: error bodies and non-streamed bodies."""

from __future__ import annotations

import json

import pytest

from tests.conformance.validator import assert_valid
from warmgate.proxy.answers.completions import normalize_body
from warmgate.proxy.answers.failures import backend_failure
from warmgate.proxy.errors import (
    BackendError,
    BackendTimeout,
    InvalidRequest,
    NoHealthyBackend,
    PayloadTooLarge,
)

SGLANG_FLAT_400 = (
    b'{"object":"error","message":"The input (9000 tokens) is longer than the model\'s context '
    b'length (8192 tokens).","type":"BadRequestError","param":null,"code":400}'
)


def test_a_flat_sglang_400_is_our_400_with_its_message_in_openai_shape() -> None:
    error = backend_failure(400, SGLANG_FLAT_400)
    assert isinstance(error, InvalidRequest)
    assert "longer than the model's context length" in error.message
    body = json.loads(error.to_json())
    assert_valid("ErrorResponse", body)
    assert body["error"]["type"] == "invalid_request_error"


QUEUE_FULL = b'{"object":"error","message":"The request queue is full.","code":503}'


@pytest.mark.parametrize(
    ("status", "payload", "kind", "http_status"),
    [
        (401, b'{"error":"Unauthorized"}', BackendError, 502),
        (403, b"forbidden", BackendError, 502),
        (404, b'{"error":{"message":"no such model"}}', BackendError, 502),
        (413, b"too big", PayloadTooLarge, 413),
        (500, b"Internal Server Error", BackendError, 502),
        (
            503,
            b'{"object":"error","message":"The request queue is full.","code":503}',
            NoHealthyBackend,
            503,
        ),
        (504, b"", BackendTimeout, 504),
    ],
)
def test_backend_failures_map_to_the_gateways_errors(
    status: int, payload: bytes, kind: type, http_status: int
) -> None:
    error = backend_failure(status, payload)
    assert isinstance(error, kind)
    assert error.status == http_status
    assert_valid("ErrorResponse", json.loads(error.to_json()))


def test_a_backend_refusing_our_key_never_looks_like_the_clients_bad_key() -> None:
    error = backend_failure(401, b'{"error":"Unauthorized"}')
    assert error.status == 502
    assert error.instance_code != "invalid_api_key"


SGLANG_CHAT = (
    b'{"id":"65226c1aedce4b9190bf48e070921e17","object":"chat.completion","created":1,'
    b'"model":"demo","choices":[{"index":0,"message":{"role":"assistant","content":"Hi",'
    b'"reasoning_content":null,"tool_calls":null},"logprobs":null,"finish_reason":"stop",'
    b'"matched_stop":128009}],"usage":{"prompt_tokens":10,"total_tokens":12,'
    b'"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":8},"reasoning_tokens":0,'
    b'"completion_tokens_details":null},"metadata":{"weight_version":"default"}}'
)


def test_a_non_streamed_sglang_chat_body_becomes_a_valid_openai_body() -> None:
    body, head = normalize_body(SGLANG_CHAT, "chatcmpl-ours")
    answer = json.loads(body)
    assert_valid("CreateChatCompletionResponse", answer)
    assert answer["id"] == "chatcmpl-ours"
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hi",
        "reasoning_content": None,
        "refusal": None,
    }
    assert "completion_tokens_details" not in answer["usage"]
    assert answer["metadata"] == {"weight_version": "default"}  # other fields untouched
    assert head.usage is not None
    assert (head.usage.prompt_tokens, head.usage.cached_tokens) == (10, 8)


@pytest.mark.parametrize("payload", [b"not json", b"<html>502</html>", b'{"id":"x","cho', b"[1]"])
def test_a_body_that_is_not_a_json_object_is_the_backends_failure(payload: bytes) -> None:
    with pytest.raises(BackendError) as caught:
        normalize_body(payload, "chatcmpl-ours")
    assert caught.value.status == 502
