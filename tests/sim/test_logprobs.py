"""logprobs and top_logprobs, shaped as SGLang 0.5.23 returns them, in chat and completions,
whole and streamed per chunk."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.conformance.validator import assert_valid
from warmgate.backends.sim import SimCluster, SimConfig

pytestmark = pytest.mark.anyio


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": "Say something"}], **extra}


def data_events(text: str) -> list[dict[str, Any]]:
    payloads = [line.removeprefix("data: ") for line in text.split("\n\n") if line]
    return [json.loads(p) for p in payloads if p != "[DONE]"]


def spec_view(chunk: dict[str, Any]) -> dict[str, Any]:
    """A chunk with SGLang's two departures from the OpenAI spec bridged: its chat logprobs
    have no `refusal` list (ChoiceLogprobs has only `content`), its completion chunks carry
    `"usage": null`. Everything else must validate as it is."""
    view = dict(chunk)
    if view.get("usage", 0) is None and view.get("object") == "text_completion":
        del view["usage"]
    if view.get("object") == "chat.completion.chunk":
        view["choices"] = [
            {**c, "logprobs": {**c["logprobs"], "refusal": None}} if c["logprobs"] else c
            for c in view["choices"]
        ]
    return view


def check_entries(entries: list[dict[str, Any]], top: int) -> None:
    """Each token: logprob <= 0, bytes of its text; its alternatives distinct, sorted, summing
    to at most 1, holding the token's own logprob where they name it."""
    for entry in entries:
        assert entry["logprob"] <= 0
        assert entry["bytes"] == list(entry["token"].encode())
        alternatives = entry["top_logprobs"]
        assert len(alternatives) == top
        values = [alt["logprob"] for alt in alternatives]
        assert values == sorted(values, reverse=True)
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-6
        assert len({alt["token"] for alt in alternatives}) == top
        for alt in alternatives:
            assert alt["bytes"] == list(alt["token"].encode())
            if alt["token"] == entry["token"]:
                assert alt["logprob"] == entry["logprob"]
        if alternatives and entry["token"] not in {alt["token"] for alt in alternatives}:
            assert entry["logprob"] < values[-1]


async def test_chat_logprobs_cover_every_sampled_token_in_sglangs_shape(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    body = chat(max_tokens=2000, logprobs=True, top_logprobs=3, seed=5)
    document = (await http.post("/v1/chat/completions", json=body)).json()
    parsed = sglang.ChatCompletionResponse.model_validate(document)
    assert json.loads(parsed.model_dump_json()) == document
    choice = document["choices"][0]
    entries = choice["logprobs"]["content"]
    check_entries(entries, 3)
    assert choice["finish_reason"] == "stop"
    # every sampled token, the end-of-turn token of the natural stop included
    assert len(entries) == document["usage"]["completion_tokens"]
    assert "".join(e["token"] for e in entries[:-1]) == choice["message"]["content"]
    assert entries[-1]["token"] == "<|eot_id|>"
    ChatCompletion.model_validate(document)


async def test_chat_logprobs_stream_per_chunk_and_add_up_to_the_whole_answer(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    body = chat(max_tokens=2000, logprobs=True, top_logprobs=2, seed=9)
    whole = (await http.post("/v1/chat/completions", json=body)).json()
    streamed = await http.post("/v1/chat/completions", json={**body, "stream": True})
    entries: list[dict[str, Any]] = []
    for chunk in data_events(streamed.text):
        sglang.ChatCompletionStreamResponse.model_validate(chunk)
        assert_valid("CreateChatCompletionStreamResponse", spec_view(chunk))
        ChatCompletionChunk.model_validate(chunk)
        for choice in chunk["choices"]:
            if choice["logprobs"] is not None:
                sglang.ChoiceLogprobs.model_validate(choice["logprobs"])
                entries += choice["logprobs"]["content"]
    assert entries == whole["choices"][0]["logprobs"]["content"]


async def test_chat_without_logprobs_reports_null(http: httpx.AsyncClient) -> None:
    document = (await http.post("/v1/chat/completions", json=chat(max_tokens=3))).json()
    assert document["choices"][0]["logprobs"] is None


async def test_logprobs_without_top_logprobs_have_no_alternatives(
    http: httpx.AsyncClient,
) -> None:
    body = chat(max_tokens=4, logprobs=True, ignore_eos=True)
    entries = (await http.post("/v1/chat/completions", json=body)).json()["choices"][0]
    check_entries(entries["logprobs"]["content"], 0)
    assert len(entries["logprobs"]["content"]) == 4


async def test_completion_logprobs_are_legacy_logprobs(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    body = {"model": "demo", "prompt": "Once", "max_tokens": 5, "ignore_eos": True, "logprobs": 2}
    document = (await http.post("/v1/completions", json=body)).json()
    parsed = sglang.CompletionResponse.model_validate(document)
    assert json.loads(parsed.model_dump_json()) == document
    logprobs = document["choices"][0]["logprobs"]
    assert logprobs["text_offset"] == [-1] * 5  # SGLang does not report offsets
    assert "".join(logprobs["tokens"]) == document["choices"][0]["text"]
    for value, alternatives in zip(
        logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True
    ):
        assert value <= 0
        assert len(alternatives) == 2
    Completion.model_validate(document)
    none_top = (await http.post("/v1/completions", json={**body, "logprobs": 0})).json()
    assert none_top["choices"][0]["logprobs"]["top_logprobs"] == [None] * 5


async def test_an_echo_with_logprobs_scores_the_prompt_too(http: httpx.AsyncClient) -> None:
    body = {"model": "demo", "prompt": "Once upon", "max_tokens": 3, "ignore_eos": True,
            "echo": True, "logprobs": 1}  # fmt: skip
    choice = (await http.post("/v1/completions", json=body)).json()["choices"][0]
    logprobs = choice["logprobs"]
    # <|begin_of_text|>, "Once", " upon", then the three sampled tokens
    assert logprobs["tokens"][:3] == ["<|begin_of_text|>", "Once", " upon"]
    assert logprobs["token_logprobs"][0] is None  # nothing precedes the first prompt token
    assert logprobs["top_logprobs"][0] is None
    assert len(logprobs["tokens"]) == 6
    assert choice["text"].startswith("Once upon")


async def test_completion_logprobs_stream_per_event(http: httpx.AsyncClient, sglang: Any) -> None:
    body = {"model": "demo", "prompt": "Once", "max_tokens": 6, "ignore_eos": True,
            "logprobs": 1, "seed": 4}  # fmt: skip
    whole = (await http.post("/v1/completions", json=body)).json()["choices"][0]["logprobs"]
    streamed = await http.post("/v1/completions", json={**body, "stream": True})
    tokens: list[str] = []
    for chunk in data_events(streamed.text):
        sglang.CompletionStreamResponse.model_validate(chunk)
        assert_valid("CreateCompletionStreamResponse", spec_view(chunk))
        for choice in chunk["choices"]:
            tokens += choice["logprobs"]["tokens"]
    assert tokens == whole["tokens"]


async def test_the_sdk_reads_logprobs_through_its_own_types() -> None:
    config = SimConfig(model="demo", time_scale=0.0)
    async with SimCluster(config) as cluster:
        client = openai.AsyncOpenAI(base_url=cluster.urls[0] + "/v1", api_key="x", max_retries=0)
        async with client:
            reply = await client.chat.completions.create(
                model="demo",
                messages=[{"role": "user", "content": "hi"}],
                logprobs=True,
                top_logprobs=2,
                max_tokens=5,
            )
            content = reply.choices[0].logprobs
            assert content is not None
            assert content.content
            assert all(len(entry.top_logprobs) == 2 for entry in content.content)
            stream = await client.chat.completions.create(
                model="demo",
                messages=[{"role": "user", "content": "hi"}],
                logprobs=True,
                max_tokens=5,
                stream=True,
            )
            seen = [c.choices[0].logprobs async for c in stream if c.choices]
            assert any(chunk is not None and chunk.content for chunk in seen)
