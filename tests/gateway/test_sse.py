"""The SSE relay as pure logic: what the client receives for what the backend sent, under any
chunking of the backend's bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from warmgate.proxy.answers.sse import SseRelay
from warmgate.proxy.errors import StreamInterrupted

UPSTREAM_ID = "0706c4db77f345c59d975523dd8f54ec"
OURS = "chatcmpl-ours"


def event(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return b"data: " + text.encode() + b"\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": UPSTREAM_ID,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "demo",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


USAGE = {
    "id": UPSTREAM_ID,
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "demo",
    "choices": [],
    "usage": {
        "prompt_tokens": 7,
        "completion_tokens": 2,
        "total_tokens": 9,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    },
}
SGLANG_STREAM = b"".join(
    [
        event(chunk({"role": "assistant", "content": ""})),
        b": keep-alive comment\n\n",
        event(chunk({"content": "Hel"})),
        event(chunk({"content": "lo"})),
        event(chunk({"role": None, "content": None}, finish="stop")),
        event(USAGE),
        b"data: [DONE]\n\n",
    ]
)


def relay_all(pieces: list[bytes], *, forward_usage: bool) -> tuple[bytes, SseRelay]:
    relay = SseRelay(OURS, forward_usage=forward_usage)
    return b"".join(relay.feed(piece) for piece in pieces), relay


def payloads(stream: bytes) -> list[Any]:
    return [
        json.loads(part.removeprefix(b"data: "))
        for part in stream.split(b"\n\n")
        if part and part != b"data: [DONE]"
    ]


def test_the_client_gets_our_id_no_comment_and_no_usage_it_did_not_ask_for() -> None:
    out, relay = relay_all([SGLANG_STREAM], forward_usage=False)
    assert out.endswith(b"data: [DONE]\n\n")
    chunks = payloads(out)
    assert [c["id"] for c in chunks] == [OURS] * 4
    assert all("usage" not in c for c in chunks)
    assert "role" not in chunks[3]["choices"][0]["delta"]  # SGLang's "role": null is dropped
    assert b"keep-alive" not in out
    assert relay.complete
    assert not relay.failed
    assert relay.usage is not None
    assert relay.usage.completion_tokens == 2


def test_the_usage_chunk_is_kept_when_asked_for_without_nulls_the_spec_forbids() -> None:
    out, _ = relay_all([SGLANG_STREAM], forward_usage=True)
    usage = payloads(out)[-1]["usage"]
    assert usage == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SGLANG_STREAM)), max_size=12))
def test_any_chunking_of_the_backend_bytes_gives_the_client_the_same_bytes(
    cuts: list[int],
) -> None:
    points = sorted(set(cuts))
    pieces = [
        SGLANG_STREAM[a:b] for a, b in zip([0, *points], [*points, len(SGLANG_STREAM)], strict=True)
    ]
    whole, _ = relay_all([SGLANG_STREAM], forward_usage=False)
    split, relay = relay_all(pieces, forward_usage=False)
    assert split == whole
    assert relay.token_chunks >= 2


def test_an_in_band_sglang_error_becomes_an_openai_error_event() -> None:
    sglang_error = event({"error": {"message": "The request queue is full.", "code": 503}})
    out, relay = relay_all([event(chunk({"content": "a"})), sglang_error], forward_usage=False)
    error = payloads(out)[-1]["error"]
    assert error == {
        "message": "The request queue is full.",
        "type": "server_error",
        "param": None,
        "code": "backend_error",
    }
    assert relay.failed
    assert relay.fail(StreamInterrupted("cut")) == b"data: [DONE]\n\n"


def test_a_stream_that_breaks_off_ends_with_an_error_and_done() -> None:
    relay = SseRelay(OURS, forward_usage=False)
    relay.feed(event(chunk({"content": "partial"})))
    tail = relay.fail(StreamInterrupted("The model backend's stream broke off."))
    assert tail.endswith(b"data: [DONE]\n\n")
    assert payloads(tail)[0]["error"]["code"] == "stream_interrupted"
    assert relay.failed
    assert relay.token_chunks == 1


def test_nothing_is_sent_after_done() -> None:
    out, relay = relay_all(
        [b"data: [DONE]\n\n", event(chunk({"content": "late"}))], forward_usage=False
    )
    assert out == b"data: [DONE]\n\n"
    assert relay.feed(event(chunk({"content": "later"}))) == b""


def test_events_of_several_lines_among_ordinary_ones_are_read_one_by_one() -> None:
    """In one chunk, ordinary events are edited in bulk; an event with an `id:` line or a JSON
    split over two `data:` lines among them must not be: each is read on its own."""
    hel, lo = json.dumps(chunk({"content": "Hel"})), json.dumps(chunk({"content": "lo"}))
    middle = len(lo) // 2
    stream = b"".join(
        [
            event(chunk({"role": "assistant", "content": ""})),
            event(chunk({"content": "a"})),
            b"data: " + hel.encode() + b"\nid: 7\n\n",
            event(chunk({"content": "b"})),
            b"data: " + lo[:middle].encode() + b"\ndata: " + lo[middle:].encode() + b"\n\n",
            event(chunk({"content": "c"})),
            b"data: [DONE]\n\n",
        ]
    )
    out, relay = relay_all([stream], forward_usage=False)
    contents = [c["choices"][0]["delta"]["content"] for c in payloads(out)]
    assert contents == ["", "a", "Hel", "b", "lo", "c"]
    assert all(c["id"] == OURS for c in payloads(out))
    assert b"id: 7" not in out
    assert relay.token_chunks == 5
