"""Byte-level shapes, written from SGLang 0.5.23's serving_chat.py, serving_completions.py,
sse_utils.py, serving_base.py, http_server.py and utils/auth.py."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx
import pytest

from warmgate.backends.sim import SimCluster, SimConfig

pytestmark = pytest.mark.anyio

HEAD = r'data: \{"id":"([0-9a-f]{32})","object":"chat.completion.chunk","created":\d+,"model":"m"'
TAIL = '"logprobs":null,"finish_reason":null,"matched_stop":null}]}'


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hello"}], **extra}


def events(raw: bytes) -> list[str]:
    text = raw.decode()
    assert text.endswith("\n\n")
    return text[:-2].split("\n\n")


async def test_chat_stream_is_role_content_finish_usage_done(http: httpx.AsyncClient) -> None:
    body = chat_body(
        max_tokens=3, ignore_eos=True, stream=True, stream_options={"include_usage": True}
    )
    reply = await http.post("/v1/chat/completions", json=body)
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    lines = events(reply.content)
    assert len(lines) == 7
    role = re.fullmatch(HEAD + r',"choices":\[\{"index":0,"delta":(.*)', lines[0])
    assert role is not None
    assert role.group(2) == '{"reasoning_content":null,"role":"assistant","content":""},' + TAIL
    rid = role.group(1)
    for line in lines[1:4]:
        content = re.fullmatch(HEAD + r',"choices":\[\{"index":0,"delta":(.*)', line)
        assert content is not None
        assert content.group(1) == rid
        assert re.fullmatch(
            r'\{"reasoning_content":null,"content":"[^"]+"\},' + TAIL, content.group(2)
        )
    assert lines[4].endswith(
        ',"choices":[{"index":0,"delta":{"reasoning_content":null},"logprobs":null,'
        '"finish_reason":"length","matched_stop":null}]}'
    )
    assert lines[5].endswith(
        ',"choices":[],"usage":{"prompt_tokens":11,"total_tokens":14,"completion_tokens":3,'
        '"prompt_tokens_details":{"cached_tokens":0},"reasoning_tokens":0,'
        '"completion_tokens_details":null}}'
    )
    assert lines[6] == "data: [DONE]"


async def test_a_stream_without_include_usage_has_no_usage_event(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/chat/completions", json=chat_body(max_tokens=2, stream=True))
    assert all('"usage"' not in line for line in events(reply.content))
    assert events(reply.content)[-1] == "data: [DONE]"


async def test_a_natural_stop_reports_the_eos_token_as_matched_stop(
    http: httpx.AsyncClient,
) -> None:
    reply = (await http.post("/v1/chat/completions", json=chat_body(max_tokens=2000))).json()
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["choices"][0]["matched_stop"] == 128009
    assert reply["metadata"] == {"weight_version": "default"}
    assert list(reply) == ["id", "object", "created", "model", "choices", "usage", "metadata"]


async def test_the_body_rid_becomes_the_response_id(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/chat/completions", json=chat_body(max_tokens=1, rid="abc"))
    assert reply.json()["id"] == "abc"


async def test_a_streamed_tool_call_opens_with_id_and_name_then_argument_deltas(
    http: httpx.AsyncClient,
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
    body = chat_body(tools=[tool], tool_choice="required", stream=True, max_tokens=100)
    lines = events((await http.post("/v1/chat/completions", json=body)).content)
    opening = json.loads(lines[1].removeprefix("data: "))
    assert opening["usage"] is None
    delta = opening["choices"][0]["delta"]
    assert list(delta) == ["role", "content", "reasoning_content", "tool_calls"]
    call = delta["tool_calls"][0]
    assert re.fullmatch(r"call_[0-9a-f]{24}", call["id"])
    assert call["function"] == {"name": "lookup", "arguments": ""}
    follow = json.loads(lines[2].removeprefix("data: "))["choices"][0]["delta"]["tool_calls"][0]
    assert follow["id"] is None
    assert follow["function"]["name"] is None
    assert '"finish_reason":"tool_calls"' in lines[-2]


async def test_completion_stream_carries_finish_on_its_last_token_event(
    http: httpx.AsyncClient,
) -> None:
    body = {
        "model": "m",
        "prompt": "hi",
        "max_tokens": 2,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    lines = events((await http.post("/v1/completions", json=body)).content)
    assert len(lines) == 4
    assert lines[0].endswith(
        ',"logprobs":null,"finish_reason":null,"matched_stop":null}],"usage":null}'
    )
    assert lines[1].endswith(
        ',"logprobs":null,"finish_reason":"length","matched_stop":null}],"usage":null}'
    )
    assert lines[2].endswith(
        ',"choices":[],"usage":{"prompt_tokens":2,"total_tokens":4,"completion_tokens":2,'
        '"prompt_tokens_details":{"cached_tokens":0},"reasoning_tokens":0}}'
    )
    assert lines[3] == "data: [DONE]"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (chat_body(messages=[]), "Messages cannot be empty."),
        (
            chat_body(tool_choice="required"),
            "Tools cannot be empty if tool choice is set to required.",
        ),
        (
            chat_body(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
            "schema_ is required for json_schema response format request.",
        ),
        (
            chat_body(max_tokens=200_000),
            "max_completion_tokens is too large: 200000.This model supports at most 131072 "
            "completion tokens.",
        ),
        (
            chat_body(max_tokens=131_070),
            "Requested token count exceeds the model's maximum context length of 131072 tokens. "
            "You requested a total of 131081 tokens: 11 tokens from the input messages and "
            "131070 tokens for the completion. Please reduce the number of tokens in the input "
            "messages or the completion to fit within the limit.",
        ),
        (chat_body(temperature=-1), "temperature must be a non-negative finite number, got -1.0."),
        (chat_body(top_p=0), "top_p must be in (0, 1], got 0.0."),
        (chat_body(max_tokens=-3), "max_new_tokens must be at least 0, got -3."),
        (
            chat_body(extra_penalty=1, presence_penalty=2.5),
            "presence_penalty must be in [-2, 2], got 2.5.",
        ),
        (
            chat_body(model="llama3:8b"),
            "LoRA adapter '8b' was requested, but LoRA is not enabled. Please launch the server "
            "with --enable-lora flag and preload adapters using --lora-paths or "
            "/load_lora_adapter endpoint.",
        ),
    ],
)
async def test_bad_requests_get_the_flat_error_body_with_sglang_messages(
    http: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    reply = await http.post("/v1/chat/completions", json=body)
    assert reply.status_code == 400
    assert reply.json() == {
        "object": "error",
        "message": message,
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }


async def test_an_overlong_prompt_gets_the_context_length_message(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/completions", json={"model": "m", "prompt": " a" * 131_072})
    assert reply.status_code == 400
    assert reply.json()["message"] == (
        "The input (131073 tokens) is longer than the model's context length (131072 tokens)."
    )


async def test_schema_violations_are_400_bad_request_never_422(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/chat/completions", json={"model": "m", "messages": "nope"})
    assert reply.status_code == 400
    assert reply.json()["type"] == "Bad Request"
    plain = await http.post(
        "/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 400
    assert "Only 'application/json' is allowed" in plain.json()["message"]


async def test_unknown_model_retrieval_is_404_with_openai_nested_body(
    http: httpx.AsyncClient,
) -> None:
    reply = await http.get("/v1/models/other")
    assert reply.status_code == 404
    assert reply.content == (
        b'{"error":{"message":"The model \'other\' does not exist","type":"invalid_request_error",'
        b'"param":"model","code":"model_not_found"}}'
    )
    assert (await http.get("/v1/models/demo")).json()["id"] == "demo"


class TestApiKey:
    @pytest.fixture
    def sim_config(self) -> SimConfig:
        return SimConfig(model="demo", time_scale=0.0, api_key="sk-sim", enable_metrics=True)

    async def test_every_route_but_health_ready_and_metrics_needs_the_key(
        self, http: httpx.AsyncClient
    ) -> None:
        for path in ("/v1/models", "/ping", "/model_info", "/v1/loads"):
            reply = await http.get(path)
            assert reply.status_code == 401
            assert reply.content == b'{"error":"Unauthorized"}'
        for path in ("/health", "/health_generate", "/ready", "/metrics"):
            assert (await http.get(path)).status_code == 200
        wrong = await http.get("/v1/models", headers={"Authorization": "Bearer sk-other"})
        assert wrong.status_code == 401
        right = await http.get("/v1/models", headers={"Authorization": "bearer sk-sim"})
        assert right.status_code == 200


class TestCacheReportOff:
    @pytest.fixture
    def sim_config(self) -> SimConfig:
        return SimConfig(model="demo", time_scale=0.0)

    async def test_cached_tokens_are_not_reported(self, http: httpx.AsyncClient) -> None:
        reply = (await http.post("/v1/chat/completions", json=chat_body(max_tokens=1))).json()
        assert reply["usage"]["prompt_tokens_details"] is None


class TestReasoning:
    @pytest.fixture
    def sim_config(self) -> SimConfig:
        return SimConfig(model="demo", time_scale=0.0, reasoning_parser="deepseek-r1")

    async def test_reasoning_content_streams_before_content(self, http: httpx.AsyncClient) -> None:
        body = chat_body(max_tokens=30, ignore_eos=True, stream=True)
        kinds = []
        for line in events((await http.post("/v1/chat/completions", json=body)).content)[1:-2]:
            delta = json.loads(line.removeprefix("data: "))["choices"][0]["delta"]
            kinds.append("reasoning" if delta["reasoning_content"] else "content")
        assert kinds[0] == "reasoning"
        assert kinds == sorted(kinds, key=lambda kind: kind != "reasoning")
        assert "content" in kinds
        plain = (await http.post("/v1/chat/completions", json=chat_body(max_tokens=30))).json()
        assert plain["choices"][0]["message"]["reasoning_content"]


async def test_metrics_use_sglang_names_and_count_requests(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    await http.post("/v1/chat/completions", json=chat_body(max_tokens=2))
    for _ in range(2):
        await http.post("/v1/chat/completions", json=chat_body(max_tokens=2, stream=True))
    text = (await http.get("/metrics")).text
    assert 'sglang:num_running_reqs{model_name="demo",engine_type="unified",tp_rank="0"' in text
    labels = 'model_name="demo",engine_type="unified",is_streaming'
    assert f'sglang:num_requests_total{{{labels}="false"}} 1.0' in text
    assert f'sglang:num_requests_total{{{labels}="true"}} 2.0' in text
    assert f'sglang:time_to_first_token_seconds_count{{{labels}="true"}} 2.0' in text
    assert "sglang:time_to_first_token_seconds_bucket{" in text
    assert "sglang:e2e_request_latency_seconds_count{" in text


async def test_n_choices_each_get_an_index_and_usage_sums_their_tokens(
    http: httpx.AsyncClient,
) -> None:
    reply = (await http.post("/v1/chat/completions", json=chat_body(n=3, max_tokens=5))).json()
    assert [choice["index"] for choice in reply["choices"]] == [0, 1, 2]
    completion = reply["usage"]["completion_tokens"]
    assert completion == sum(
        len(c["message"]["content"].split()) + (c["finish_reason"] == "stop")
        for c in reply["choices"]
    )
    assert reply["usage"]["prompt_tokens"] == 11


async def test_a_stream_with_n_choices_opens_and_finishes_every_index(
    http: httpx.AsyncClient,
) -> None:
    body = chat_body(
        n=2, max_tokens=4, ignore_eos=True, stream=True, stream_options={"include_usage": True}
    )
    lines = events((await http.post("/v1/chat/completions", json=body)).content)
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    roles = [
        c["choices"][0]["index"]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("role") == "assistant"
    ]
    finishes = [
        c["choices"][0]["index"]
        for c in chunks
        if c["choices"] and c["choices"][0]["finish_reason"] == "length"
    ]
    assert sorted(roles) == [0, 1]
    assert finishes == [0, 1]
    assert chunks[-1]["usage"]["completion_tokens"] == 8


async def test_stream_headers_wait_for_the_first_token(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    scheduler = cluster.replicas[0].scheduler
    await http.post("/pause_generation")
    got_headers = anyio.Event()
    status: list[int] = []

    async def stream() -> None:
        body = chat_body(max_tokens=2, stream=True)
        async with http.stream("POST", "/v1/chat/completions", json=body) as reply:
            status.append(reply.status_code)
            got_headers.set()
            await reply.aread()

    async with anyio.create_task_group() as group:
        group.start_soon(stream)
        with anyio.fail_after(5):
            await scheduler.wait_until(lambda s: s.num_waiting == 1)
        assert not got_headers.is_set()
        await http.post("/continue_generation")
        with anyio.fail_after(5):
            await got_headers.wait()
    assert status == [200]


async def test_continuous_usage_stats_put_running_usage_on_content_events(
    http: httpx.AsyncClient,
) -> None:
    body = chat_body(
        max_tokens=3,
        ignore_eos=True,
        stream=True,
        stream_options={"include_usage": False, "continuous_usage_stats": True},
    )
    lines = events((await http.post("/v1/chat/completions", json=body)).content)
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert "usage" not in chunks[0]  # the role event
    counted = [c["usage"]["completion_tokens"] for c in chunks[1:-1]]
    assert counted == sorted(counted)
    assert counted[-1] == 3
    assert "usage" not in chunks[-1]  # the finish event


async def test_a_stop_string_ends_the_answer_before_it_and_is_reported_as_matched(
    http: httpx.AsyncClient,
) -> None:
    body = chat_body(max_tokens=50, ignore_eos=True, stop=["e"])
    reply = (await http.post("/v1/chat/completions", json=body)).json()
    choice = reply["choices"][0]
    assert (choice["finish_reason"], choice["matched_stop"]) == ("stop", "e")
    assert "e" not in choice["message"]["content"]
    assert reply["usage"]["completion_tokens"] < 50
    streamed = events(
        (
            await http.post(
                "/v1/completions",
                json={
                    "model": "m",
                    "prompt": "hello",
                    "max_tokens": 50,
                    "ignore_eos": True,
                    "stop": "e",
                    "stream": True,
                },
            )
        ).content
    )
    last = json.loads(streamed[-2].removeprefix("data: "))["choices"][0]
    assert (last["finish_reason"], last["matched_stop"]) == ("stop", "e")
    text = "".join(
        json.loads(line.removeprefix("data: "))["choices"][0]["text"] for line in streamed[:-1]
    )
    assert "e" not in text


class TestThinkingSwitch:
    @pytest.fixture
    def sim_config(self) -> SimConfig:
        return SimConfig(model="demo", time_scale=0.0, reasoning_parser="qwen3")

    async def test_enable_thinking_false_answers_without_reasoning(
        self, http: httpx.AsyncClient
    ) -> None:
        body = chat_body(max_tokens=30, chat_template_kwargs={"enable_thinking": False})
        reply = (await http.post("/v1/chat/completions", json=body)).json()
        assert reply["choices"][0]["message"]["reasoning_content"] is None
        assert reply["usage"]["reasoning_tokens"] == 0
        thinking = (await http.post("/v1/chat/completions", json=chat_body(max_tokens=30))).json()
        assert thinking["usage"]["reasoning_tokens"] > 0
        assert thinking["usage"]["completion_tokens_details"] == {
            "reasoning_tokens": thinking["usage"]["reasoning_tokens"]
        }


async def test_a_refused_body_is_described_the_way_fastapi_describes_it(
    http: httpx.AsyncClient,
) -> None:
    reply = await http.post("/v1/chat/completions", json={"model": "m"})
    error = (
        "{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required', "
        "'input': {'model': 'm'}}"
    )
    assert reply.json() == {
        "object": "error",
        "message": f"1 validation error:\n  {error} [{error}]",
        "type": "Bad Request",
        "param": None,
        "code": 400,
    }
    nested = await http.post("/v1/chat/completions", json={"messages": [{"content": "x"}]})
    assert "'loc': ('body', 'messages', 0, 'role')" in nested.json()["message"]


async def test_inter_token_latency_is_observed_once_per_token_gap(
    http: httpx.AsyncClient,
) -> None:
    await http.post("/v1/chat/completions", json=chat_body(max_tokens=5, ignore_eos=True))
    text = (await http.get("/metrics")).text
    count = 'sglang:inter_token_latency_seconds_count{model_name="demo",engine_type="unified"} 4.0'
    assert count in text
