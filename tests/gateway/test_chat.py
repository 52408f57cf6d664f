"""Chat completions through the gateway with the official SDK, the simulator behind it.

Every body and stream chunk the SDK receives is also validated against the OpenAI spec (the
`transport` fixture), and the SDK runs with strict response validation.
"""

from __future__ import annotations

import json
from typing import Any

from openai import OpenAI

from tests.conformance.validator import assert_valid
from tests.gateway.conftest import SimStats
from tests.support.recording import RecordingTransport

ACME = "acme/demo-7b"  # served by the first replica only: its stats show what arrived
HELLO: list[Any] = [{"role": "user", "content": "Say hello in five words."}]


def test_a_chat_completion_carries_the_request_id_as_its_id(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="demo", messages=HELLO)
    completion = raw.parse()
    assert completion.id.startswith("chatcmpl-")
    assert raw.headers["x-request-id"] == completion.id
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.headers["x-warmgate-price-usd"] == "0.002000"


def test_answers_name_the_public_model_not_the_served_one(client: OpenAI) -> None:
    completion = client.chat.completions.create(model=ACME, messages=HELLO, max_tokens=3)
    assert completion.model == ACME
    chunks = list(
        client.chat.completions.create(model=ACME, messages=HELLO, max_tokens=3, stream=True)
    )
    assert {chunk.model for chunk in chunks} == {ACME}


def test_an_alias_reaches_the_backend_as_the_served_name(
    sim_stats: SimStats, client: OpenAI, sim: Any
) -> None:
    client.chat.completions.create(model=ACME, messages=HELLO, max_tokens=4)
    assert sim_stats(sim.urls[0])["last_request_body"]["model"] == "demo"
    completion = client.chat.completions.create(model="demo-latest", messages=HELLO)
    assert completion.choices[0].message.content


def test_a_stream_without_include_usage_sends_no_usage_chunk(
    sim_stats: SimStats, client: OpenAI, sim: Any
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model=ACME, messages=HELLO, stream=True
    ) as raw:
        request_id = raw.headers["x-request-id"]
        assert raw.headers["content-type"].startswith("text/event-stream")
        chunks = list(raw.parse())
    assert chunks, "no chunk arrived"
    assert {chunk.id for chunk in chunks} == {request_id}
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    # Upstream, usage was asked for all the same (every stream is accounted).
    upstream = sim_stats(sim.urls[0])["last_request_body"]
    assert upstream["stream_options"] == {"include_usage": True}


def test_a_stream_with_include_usage_ends_with_the_usage_chunk(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="demo", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens >= 1
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_the_sdk_stream_helper_assembles_the_whole_answer(client: OpenAI) -> None:
    with client.chat.completions.stream(model="demo", messages=HELLO) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert deltas
    assert final.choices[0].message.content == "".join(deltas)


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_a_tool_call_and_its_tool_message_follow_up(client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model="demo", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)
    follow_up = [
        *messages,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21}'},
    ]
    second = client.chat.completions.create(model="demo", messages=follow_up, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.content


def test_a_streamed_tool_call_arrives_as_indexed_deltas(client: OpenAI) -> None:
    with client.chat.completions.stream(
        model="demo",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls
    assert calls[0].function.name == "get_weather"


def test_json_object_answers_are_json(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Reply in JSON with a greeting."}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


def test_json_schema_answers_follow_the_schema(
    sim_stats: SimStats, client: OpenAI, sim: Any
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model=ACME,
        messages=[{"role": "user", "content": "A person, please."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )
    answer = json.loads(completion.choices[0].message.content or "")
    assert set(answer) == {"name", "age"}
    assert sim_stats(sim.urls[0])["last_request_body"]["response_format"]["json_schema"] == {
        "name": "person",
        "schema": schema,
        "strict": True,
    }


def test_stop_seed_and_logprobs_pass_through(
    sim_stats: SimStats, client: OpenAI, sim: Any, transport: RecordingTransport
) -> None:
    """The fields reach the backend, and its logprobs come back."""
    completion = client.chat.completions.create(
        model=ACME,
        messages=HELLO,
        n=1,
        stop=["\n\n", "END"],
        seed=7,
        logprobs=True,
        top_logprobs=2,
        temperature=0.3,
        max_tokens=5,
    )
    assert completion.choices[0].message.content
    assert completion.choices[0].logprobs is not None
    # SGLang's logprobs have no `refusal` list, which the OpenAI spec requires: the gateway
    # adds it, whole and streamed.
    exchange = transport.exchanges.pop()
    document = json.loads(bytes(exchange.body))
    assert document["choices"][0]["logprobs"]["refusal"] is None
    assert_valid("CreateChatCompletionResponse", document)
    seen = sim_stats(sim.urls[0])["last_request_body"]
    assert (seen["n"], seen["stop"], seen["seed"], seen["logprobs"], seen["top_logprobs"]) == (
        1,
        ["\n\n", "END"],
        7,
        True,
        2,
    )
    with client.chat.completions.stream(
        model=ACME, messages=HELLO, logprobs=True, top_logprobs=2, max_tokens=5
    ) as stream:
        events = [event for event in stream if event.type == "chunk"]
    chunks = [event.chunk for event in events if event.chunk.choices]
    with_logprobs = [c.choices[0].logprobs for c in chunks if c.choices[0].logprobs is not None]
    assert with_logprobs
    assert all(logprobs.refusal is None for logprobs in with_logprobs)
    streamed = transport.exchanges.pop()
    for line in bytes(streamed.body).split(b"\n\n"):
        if line.startswith(b"data: {"):
            assert_valid("CreateChatCompletionStreamResponse", json.loads(line[6:]))


def test_n_choices_come_back_and_n_reaches_the_backend(
    sim_stats: SimStats, client: OpenAI, sim: Any
) -> None:
    completion = client.chat.completions.create(model=ACME, messages=HELLO, n=2, max_tokens=3)
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert sim_stats(sim.urls[0])["last_request_body"]["n"] == 2


def test_extra_body_fields_reach_the_backend_untouched(
    sim_stats: SimStats, client: OpenAI, sim: Any
) -> None:
    extras = {
        "top_k": 20,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": False},
        "regex": "[a-z ]+",
    }
    client.chat.completions.create(model=ACME, messages=HELLO, max_tokens=3, extra_body=extras)
    seen = sim_stats(sim.urls[0])["last_request_body"]
    assert {name: seen.get(name) for name in extras} == extras
