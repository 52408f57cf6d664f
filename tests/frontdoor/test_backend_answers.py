"""What a backend answers is made OpenAI's, or refused: an unreadable 200 is a 502 and is not
billed, an answer past the size limit is a 502, a stream framed with CR or CRLF reads as one
framed with LF, and a backend's own error text reaches the client only when it is known safe."""

from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from structlog.testing import capture_logs

from tests.frontdoor.conftest import MAX_ANSWER_BYTES
from tests.frontdoor.scripted import Scripted, ScriptedBackend
from tests.support.gateway import GatewayServer

CHAT_PATH = "/v1/chat/completions"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
CHAT_ANSWER = (
    b'{"id":"abc","object":"chat.completion","created":1,"model":"demo","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
)


@pytest.mark.parametrize(
    "scripted_answer",
    [
        Scripted(content_type="text/html", parts=(b"<html><body>Bad gateway</body></html>",)),
        Scripted(parts=(CHAT_ANSWER[:40],)),
        Scripted(parts=(b'"just a string"',)),
        Scripted(parts=(CHAT_ANSWER[:40],), announced_length=len(CHAT_ANSWER)),
    ],
    ids=["html", "truncated-json", "not-an-object", "cut-short"],
)
def test_an_unreadable_200_is_a_502_and_is_not_billed(
    front: GatewayServer, scripted: ScriptedBackend, client: OpenAI, scripted_answer: Scripted
) -> None:
    scripted.answer(CHAT_PATH, scripted_answer)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="scripted", messages=HI)
    assert raised.value.status_code == 502
    line = front.request_line(raised.value.response.headers["x-request-id"])
    assert (line["status"], line["billed"]) == (502, False)


def test_a_readable_answer_from_the_same_backend_is_served_and_billed(
    front: GatewayServer, scripted: ScriptedBackend, client: OpenAI
) -> None:
    scripted.answer(CHAT_PATH, Scripted(parts=(CHAT_ANSWER,)))
    answer = client.chat.completions.with_raw_response.create(model="scripted", messages=HI)
    assert answer.parse().choices[0].message.content == "Hello"
    line = front.request_line(answer.headers["x-request-id"])
    assert (line["status"], line["billed"]) == (200, True)


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "chunked"])
def test_an_answer_larger_than_the_limit_is_a_502(
    scripted: ScriptedBackend, client: OpenAI, chunked: bool
) -> None:
    big = b'{"id":"abc","pad":"' + b"x" * MAX_ANSWER_BYTES + b'"}'
    parts = tuple(big[i : i + 8192] for i in range(0, len(big), 8192))
    scripted.answer(CHAT_PATH, Scripted(parts=parts, chunked=chunked))
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="scripted", messages=HI)
    assert raised.value.status_code == 502
    assert "larger than the gateway accepts" in raised.value.message


def _events(line_end: bytes, *payloads: bytes) -> tuple[bytes, ...]:
    return tuple(b"data: " + payload + line_end + line_end for payload in payloads)


CHUNK = b'{"id":"abc","object":"chat.completion.chunk","created":1,"model":"demo","choices":[{"index":0,"delta":{"content":"%s"},"logprobs":null,"finish_reason":null}]}'  # noqa: E501
USAGE = b'{"id":"abc","object":"chat.completion.chunk","created":1,"model":"demo","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}'  # noqa: E501


@pytest.mark.parametrize("line_end", [b"\r\n", b"\r", b"\n"], ids=["crlf", "cr", "lf"])
def test_a_stream_is_read_whatever_its_line_ends(
    front: GatewayServer, scripted: ScriptedBackend, client: OpenAI, line_end: bytes
) -> None:
    events = _events(line_end, CHUNK % b"Hel", CHUNK % b"lo", CHUNK % b"!", USAGE, b"[DONE]")
    # split anywhere, so that a CR and its LF may arrive in different chunks
    stream = b"".join(events)
    parts = tuple(stream[i : i + 7] for i in range(0, len(stream), 7))
    scripted.answer(
        CHAT_PATH, Scripted(content_type="text/event-stream", parts=parts, chunked=True)
    )
    text = ""
    with client.chat.completions.with_streaming_response.create(
        model="scripted", messages=HI, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        for chunk in response.parse():
            assert isinstance(chunk, ChatCompletionChunk)
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
    assert text == "Hello!"
    line = front.request_line(request_id)
    assert (line["status"], line["error_code"], line["completion_tokens"]) == (200, None, 3)


SECRET = "postgres://admin:hunter2@10.0.0.7/internal"


@pytest.mark.parametrize("status", [400, 500])
def test_a_backends_error_text_is_not_passed_to_the_client_but_logged(
    scripted: ScriptedBackend, client: OpenAI, status: int
) -> None:
    body = json.dumps({"object": "error", "message": f"cannot reach {SECRET}", "code": status})
    scripted.answer(CHAT_PATH, Scripted(status=status, parts=(body.encode(),)))
    with capture_logs() as logs, pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="scripted", messages=HI)
    assert SECRET not in raised.value.response.text
    assert f"(HTTP {status})" in raised.value.message
    logged = [entry for entry in logs if entry["event"] == "backend_error_answer"]
    assert logged
    assert SECRET in logged[0]["text"]
    assert logged[0]["request_id"] == raised.value.response.headers["x-request-id"]


def test_sglangs_context_length_error_reaches_the_client_as_openais(
    scripted: ScriptedBackend, client: OpenAI
) -> None:
    message = "The input (9000 tokens) is longer than the model's context length (8192 tokens)."
    body = json.dumps({"object": "error", "message": message, "type": "BadRequest", "code": 400})
    scripted.answer(CHAT_PATH, Scripted(status=400, parts=(body.encode(),)))
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="scripted", messages=HI)
    assert raised.value.code == "context_length_exceeded"
    assert raised.value.message.endswith(message)


def test_an_in_band_stream_error_keeps_the_backends_text_to_itself(
    scripted: ScriptedBackend, client: OpenAI
) -> None:
    error = json.dumps({"error": {"message": f"worker crashed at {SECRET}", "code": 500}})
    parts = _events(b"\n", CHUNK % b"Hi", error.encode(), b"[DONE]")
    scripted.answer(
        CHAT_PATH, Scripted(content_type="text/event-stream", parts=parts, chunked=True)
    )
    with pytest.raises(openai.APIError) as raised:
        for _ in client.chat.completions.create(model="scripted", messages=HI, stream=True):
            pass
    assert SECRET not in raised.value.message
