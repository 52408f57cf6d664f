"""Batched /v1/completions prompts: n choices per prompt, indexed as SGLang's tokenizer
manager expands a batch (prompt-major), echo taking prompt index // n."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai.types import Completion

pytestmark = pytest.mark.anyio

PROMPTS = ["Alpha says", "Bravo says", "Charlie says"]


async def test_three_prompts_with_n_2_give_six_choices_indexed_prompt_major(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    body = {"model": "demo", "prompt": PROMPTS, "n": 2, "max_tokens": 4, "echo": True}
    document = (await http.post("/v1/completions", json=body)).json()
    parsed = sglang.CompletionResponse.model_validate(document)
    assert json.loads(parsed.model_dump_json()) == document
    assert [c["index"] for c in document["choices"]] == list(range(6))
    for choice in document["choices"]:
        # serving_completions._build_completion_response: echo_prompts[idx // n]
        assert choice["text"].startswith(PROMPTS[choice["index"] // 2])
    texts = [c["text"] for c in document["choices"]]
    assert len(set(texts)) == 6  # two different samples per prompt
    alone = 0
    for prompt in PROMPTS:
        single = await http.post("/v1/completions", json={**body, "prompt": prompt, "n": 1})
        alone += single.json()["usage"]["prompt_tokens"]
    assert document["usage"]["prompt_tokens"] == alone  # each prompt once, not once per choice
    Completion.model_validate(document)


async def test_a_batched_stream_interleaves_its_choices_by_index(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    body = {"model": "demo", "prompt": PROMPTS, "n": 2, "max_tokens": 3, "ignore_eos": True,
            "echo": True, "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    reply = await http.post("/v1/completions", json=body)
    texts: dict[int, str] = {}
    finished: set[int] = set()
    for line in reply.text.split("\n\n"):
        if not line.startswith("data: {"):
            continue
        chunk = json.loads(line.removeprefix("data: "))
        sglang.CompletionStreamResponse.model_validate(chunk)
        for choice in chunk["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
            if choice["finish_reason"] is not None:
                finished.add(choice["index"])
    assert finished == set(range(6))
    for index, text in texts.items():
        assert text.startswith(PROMPTS[index // 2])
    assert reply.text.endswith("data: [DONE]\n\n")


async def test_token_id_prompts_batch_the_same_way(http: httpx.AsyncClient, sglang: Any) -> None:
    body = {"model": "demo", "prompt": [[1, 2, 3], [4, 5]], "n": 2, "max_tokens": 2}
    sglang.CompletionRequest.model_validate(body)  # SGLang accepts this shape
    document = (await http.post("/v1/completions", json=body)).json()
    assert [c["index"] for c in document["choices"]] == [0, 1, 2, 3]
    assert document["usage"]["prompt_tokens"] == 5


@pytest.mark.parametrize("prompt", ["", [], ["", ""]])
async def test_an_empty_prompt_is_refused_as_sglang_refuses_it(
    http: httpx.AsyncClient, prompt: Any
) -> None:
    reply = await http.post("/v1/completions", json={"model": "demo", "prompt": prompt})
    assert reply.status_code == 400
    assert reply.json()["message"] == "Prompt cannot be empty"
