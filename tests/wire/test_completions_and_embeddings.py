"""Legacy completions and embeddings: validation, the view, and base64 vectors."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from warmgate.proxy.answers.base64_vectors import encode_embeddings_base64, floats_to_base64
from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.wire import decode_completion, decode_embedding


def completion(**fields: Any) -> bytes:
    return json.dumps({"model": "demo", "prompt": "Once upon", **fields}).encode()


def embedding(**fields: Any) -> bytes:
    return json.dumps({"model": "embed", "input": "hello", **fields}).encode()


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        (json.dumps({"model": "demo"}).encode(), "prompt"),
        (completion(prompt=5), "prompt"),
        (completion(prompt=["a", 1]), "prompt"),
        (completion(prompt=[[1, 2], []]), "prompt[1]"),
        (completion(logprobs=6), "logprobs"),
        (completion(best_of=21), "best_of"),
        (completion(max_tokens=-1), "max_tokens"),
        (completion(echo="yes"), "echo"),
        (completion(suffix=3), "suffix"),
        (completion(stream_options={"include_usage": True}), "stream_options"),
        (completion(temperature=2.1), "temperature"),
        (completion(stop=["1", "2", "3", "4", "5"]), "stop"),
    ],
)
def test_an_invalid_completion_request_is_a_400_naming_the_field(
    request_body: bytes, param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_completion(request_body)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("prompt", "estimate"),
    [("x" * 40, 11), (["ab", "cd"], 2), ([1, 2, 3], 3), ([[1, 2], [3]], 3), (None, 0)],
    ids=["string", "strings", "token-ids", "token-id-lists", "null"],
)
def test_every_prompt_form_is_accepted_and_weighed(prompt: Any, estimate: int) -> None:
    view = decode_completion(completion(prompt=prompt, max_tokens=0, echo=True))
    assert view.endpoint == "completions"
    assert view.prompt_tokens_estimate == estimate


def test_a_completion_stream_view_reports_usage_and_prefix() -> None:
    view = decode_completion(
        completion(stream=True, stream_options={"include_usage": False}, n=2, top_k=5)
    )
    assert (view.stream, view.include_usage, view.n, view.prefix) == (True, False, 2, "Once upon")


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        (json.dumps({"model": "embed"}).encode(), "input"),
        (embedding(input=""), "input"),
        (embedding(input=["a", ""]), "input"),
        (embedding(input=[]), "input"),
        (embedding(input=["a"] * 2049), "input"),
        (embedding(input=[1, "a"]), "input"),
        (embedding(encoding_format="int8"), "encoding_format"),
        (embedding(dimensions=0), "dimensions"),
        (embedding(input={"text": "a"}), "input"),
    ],
)
def test_an_invalid_embedding_request_is_a_400_naming_the_field(
    request_body: bytes, param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_embedding(request_body)
    assert caught.value.param == param


def test_the_embedding_view_carries_the_encoding_the_client_asked_for() -> None:
    assert decode_embedding(embedding()).encoding_format == "float"
    assert decode_embedding(embedding(encoding_format="base64")).encoding_format == "base64"
    view = decode_embedding(embedding(input=[[1, 2, 3], [4]]))
    assert (view.prompt_tokens_estimate, view.stream, view.n) == (4, False, 1)


def test_floats_become_float32_little_endian_base64() -> None:
    encoded = floats_to_base64([1.0, -2.5, 0.1])
    raw = base64.b64decode(encoded)
    assert raw[:4] == struct.pack("<f", 1.0)
    assert struct.unpack("<3f", raw) == pytest.approx([1.0, -2.5, 0.1], rel=1e-6)


def test_an_embeddings_response_is_converted_keeping_every_other_field() -> None:
    response = (
        b'{"object":"list","model":"embed","data":[{"object":"embedding","index":0,'
        b'"embedding":[0.25,-1.0]},{"object":"embedding","index":1,"embedding":[3.0,0.5]}],'
        b'"usage":{"prompt_tokens":4,"total_tokens":4},"extra":{"kept": [1, 2]}}'
    )
    converted = json.loads(encode_embeddings_base64(response))
    assert converted["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert converted["extra"] == {"kept": [1, 2]}
    vectors = [
        list(struct.unpack("<2f", base64.b64decode(item["embedding"])))
        for item in converted["data"]
    ]
    assert vectors == [[0.25, -1.0], [3.0, 0.5]]
    assert [item["index"] for item in converted["data"]] == [0, 1]


def test_a_response_already_in_base64_or_not_an_embedding_list_is_left_alone() -> None:
    already = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPw=="}]}'
    assert encode_embeddings_base64(already) is already
    error = b'{"error":{"message":"x"}}'
    assert encode_embeddings_base64(error) is error
    assert encode_embeddings_base64(b"not json") == b"not json"
