"""Responses API requests, their stream relay, image answers and response-id bindings."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from warmgate.proxy.answers.generated_images import ImagesAnswerError, images_response
from warmgate.proxy.answers.responses_api import ResponsesStreamRelay, drop_unset_nulls
from warmgate.proxy.errors import InvalidRequest, StreamInterrupted
from warmgate.proxy.routing.bindings import Binding, ResponseBindings
from warmgate.proxy.wire import rewrite_request
from warmgate.proxy.wire.decoding import decode_images, decode_responses
from warmgate.proxy.wire.views import images_upstream_body

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def event(kind: str, sequence: int, **fields: Any) -> bytes:
    payload = json.dumps({"type": kind, "sequence_number": sequence, **fields})
    return f"event: {kind}\ndata: {payload}\n\n".encode()


RESPONSE = {"id": "resp_abc", "object": "response", "status": "in_progress", "usage": None,
            "user": None}  # fmt: skip
USAGE = {"input_tokens": 7, "output_tokens": 3,
         "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0}}  # fmt: skip
FINAL = {**RESPONSE, "status": "completed", "usage": USAGE}
STREAM = b"".join([
    event("response.created", 0, response=RESPONSE),
    event("response.output_text.delta", 1, delta="Hel", item_id="m", output_index=0,
          content_index=0),
    event("response.output_text.delta", 2, delta="lo", item_id="m", output_index=0,
          content_index=0),
    event("response.completed", 3, response=FINAL),
])  # fmt: skip


@pytest.mark.parametrize("size", [1, 7, 64, len(STREAM)])
def test_the_relay_passes_events_through_whatever_the_chunking(size: int) -> None:
    relay = ResponsesStreamRelay()
    out = b"".join(relay.feed(STREAM[at : at + size]) for at in range(0, len(STREAM), size))
    assert out == drop_unset_nulls(STREAM)
    assert out.count(b"event: ") == 4
    assert b'"user":null' not in out
    assert b'"usage":null' not in out
    assert (relay.response_id, relay.token_chunks, relay.complete, relay.failed) == (
        "resp_abc", 2, True, False)  # fmt: skip
    assert relay.usage is not None
    assert (relay.usage.prompt_tokens, relay.usage.completion_tokens) == (7, 3)
    assert relay.usage.cached_tokens == 4


def test_crlf_framing_and_comments_are_handled() -> None:
    relay = ResponsesStreamRelay()
    out = relay.feed(b": keep-alive\r\n\r\n" + STREAM.replace(b"\n", b"\r\n"))
    assert out.count(b"event: ") == 4
    assert relay.complete


def test_an_event_without_an_event_line_gets_one_from_its_type() -> None:
    relay = ResponsesStreamRelay()
    out = relay.feed(b'data: {"type":"response.in_progress","sequence_number":1}\n\n')
    assert out == (b'event: response.in_progress\ndata: {"type":"response.in_progress",'
                   b'"sequence_number":1}\n\n')  # fmt: skip


def test_a_stream_cut_before_its_final_event_ends_with_an_error_event() -> None:
    relay = ResponsesStreamRelay()
    relay.feed(STREAM[: STREAM.index(b"event: response.completed")])
    assert not relay.complete
    tail = relay.fail(StreamInterrupted("The model backend's stream broke off."))
    assert tail.startswith(b"event: error\ndata: ")
    error = json.loads(tail.split(b"data: ", 1)[1])
    assert error["type"] == "error"
    assert error["sequence_number"] == 3
    assert error["error"]["message"] == error["message"]
    assert relay.fail(StreamInterrupted("again")) == b""


def test_a_backend_error_in_the_stream_becomes_a_spec_error_event() -> None:
    relay = ResponsesStreamRelay()
    out = relay.feed(b'data: {"error": {"message": "engine died", "code": 500}}\n\n')
    error = json.loads(out.split(b"data: ", 1)[1])
    # the backend's own words are not passed on (proxy/answers/failures.py)
    assert (error["type"], error["message"], error["code"]) == (
        "error",
        "The model backend failed while answering.",
        "backend_error",
    )
    assert relay.failed


def test_a_completed_stream_needs_no_error_event() -> None:
    relay = ResponsesStreamRelay()
    relay.feed(STREAM)
    assert relay.fail(StreamInterrupted("late")) == b""


def test_a_responses_request_view_carries_routing_text_and_previous_id() -> None:
    view = decode_responses(json.dumps({
        "model": "demo", "instructions": "Be brief.", "previous_response_id": "resp_1",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
                  {"type": "function_call_output", "call_id": "c", "output": "42"}],
        "store": True, "custom_extra": {"kept": True},
    }).encode())  # fmt: skip
    assert (view.endpoint, view.response_ref, view.response_ref_param) == (
        "responses", "resp_1", "previous_response_id")  # fmt: skip
    assert view.prefix == "Be brief. Hi"


def test_background_without_store_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_responses(b'{"model": "m", "background": true, "store": false}')
    assert caught.value.param == "store"


def test_an_image_request_asks_the_backend_for_base64_under_its_served_name() -> None:
    body = b'{"prompt": "a fox", "model": "painter", "size": "256x256"}'
    view = decode_images(body)
    expected = {"response_format": "b64_json", "prompt": "a fox", "model": "sd3",
                "size": "256x256"}  # fmt: skip
    assert json.loads(images_upstream_body(view, body, "sd3")) == expected
    asked = b'{"prompt": "a fox", "model": "sd3", "response_format": "b64_json"}'
    assert images_upstream_body(decode_images(asked), asked, "sd3") is asked


def test_the_rewriter_sets_any_top_level_field() -> None:
    rewritten = rewrite_request(b'{"a": 1, "b": [2]}', fields={"b": "x", "c": None})
    assert rewritten == b'{"c":null,"a": 1, "b": "x"}'


def backend_images(*items: dict[str, Any], usage: Any = None) -> bytes:
    return json.dumps({"id": "x", "created": 5, "data": list(items), "usage": usage,
                       "peak_memory_mb": None}).encode()  # fmt: skip


def test_image_answers_lose_sglang_nulls_and_chat_style_usage() -> None:
    b64 = base64.b64encode(PNG).decode()
    payload = backend_images({"b64_json": b64, "url": None, "revised_prompt": None,
                              "file_path": None}, usage={"prompt_tokens": None})  # fmt: skip
    assert json.loads(images_response(payload, "b64_json")) == {
        "created": 5, "data": [{"b64_json": b64}]}  # fmt: skip
    as_url = json.loads(images_response(payload, "url"))
    assert as_url["data"] == [{"url": f"data:image/png;base64,{b64}"}]


def test_image_usage_in_openai_shape_is_kept() -> None:
    usage = {"input_tokens": 5, "output_tokens": 100, "total_tokens": 105,
             "input_tokens_details": {"text_tokens": 5, "image_tokens": 0}}  # fmt: skip
    payload = backend_images({"b64_json": base64.b64encode(PNG).decode()}, usage=usage)
    assert json.loads(images_response(payload, "b64_json"))["usage"] == usage


@pytest.mark.parametrize("payload", [b"not json", backend_images({"url": "http://internal/1"})])
def test_an_image_answer_without_image_bytes_is_an_error(payload: bytes) -> None:
    with pytest.raises(ImagesAnswerError):
        images_response(payload, "url")


def test_bindings_in_memory_are_per_key_and_keep_the_newest() -> None:
    async def run() -> None:
        bindings = ResponseBindings(capacity=2)
        assert bindings.bind("resp_1", Binding("key_a", "demo", "demo@a")) is None
        bindings.bind("resp_2", Binding("key_a", "demo", "demo@b"))
        assert await bindings.find("resp_1", "key_a") == Binding("key_a", "demo", "demo@a")
        assert await bindings.find("resp_1", "key_b") is None
        bindings.bind("resp_3", Binding("key_a", "demo", "demo@a"))
        assert await bindings.find("resp_1", "key_a") is None
        assert len(bindings) == 2

    asyncio.run(run())


def test_events_name_the_public_model_instead_of_the_served_one() -> None:
    relay = ResponsesStreamRelay(("org/served-7b", "painter"))
    created = event("response.created", 0, response={"id": "resp_1", "model": "org/served-7b"})
    out = relay.feed(created)
    assert b'"model":"painter"' in out.replace(b": ", b":")
    assert b"served-7b" not in out
