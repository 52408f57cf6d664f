"""The official openai SDK pointed straight at the simulator."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import openai
import pytest
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
)

pytestmark = pytest.mark.anyio

WEATHER_PARAMETERS: dict[str, object] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
}
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": WEATHER_PARAMETERS,
    },
}


async def test_chat_completion_returns_text_usage_and_the_requested_model(
    sdk: openai.AsyncOpenAI,
) -> None:
    reply = await sdk.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Say hello"}], max_tokens=12
    )
    assert reply.model == "demo"
    assert len(reply.id) == 32
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert 1 <= reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_chat_stream_assembles_to_the_text_counted_in_usage(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Tell me a story"}],
        max_tokens=20,
        extra_body={"ignore_eos": True},
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert finish == "length"
    assert usage is not None
    assert usage.completion_tokens == 20
    assert len(text.split()) == 20


async def test_forced_tool_call_has_sglang_id_and_arguments_that_fit_the_schema(
    sdk: openai.AsyncOpenAI,
) -> None:
    reply = await sdk.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=200,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    call = calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id.startswith("call_")
    assert len(call.id) == len("call_") + 24
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_PARAMETERS)


async def test_streamed_tool_call_deltas_rebuild_valid_arguments(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        max_tokens=200,
        stream=True,
    )
    names, arguments, finish = [], "", None
    async for chunk in stream:
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or []:
            assert call.index == 0
            if call.function and call.function.name:
                names.append(call.function.name)
            arguments += (call.function.arguments or "") if call.function else ""
        finish = choice.finish_reason or finish
    assert names == ["get_weather"]
    assert finish == "tool_calls"
    jsonschema.validate(json.loads(arguments), WEATHER_PARAMETERS)


async def test_json_object_mode_returns_a_json_object(sdk: openai.AsyncOpenAI) -> None:
    reply = await sdk.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={"type": "json_object"},
        max_tokens=200,
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


async def test_json_schema_mode_returns_content_that_validates(sdk: openai.AsyncOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "active": {"type": "boolean"},
        },
        "required": ["name", "age", "tags", "active"],
        "additionalProperties": False,
    }
    reply = await sdk.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Describe a person"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
        max_tokens=300,
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


async def test_completions_stream_and_non_stream(sdk: openai.AsyncOpenAI) -> None:
    reply = await sdk.completions.create(model="demo", prompt="Once upon a time", max_tokens=8)
    assert reply.object == "text_completion"
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 8
    stream = await sdk.completions.create(
        model="demo", prompt="Once upon a time", max_tokens=8, stream=True
    )
    streamed = "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])
    assert streamed == reply.choices[0].text


async def test_embeddings_in_float_and_base64_agree(sdk: openai.AsyncOpenAI) -> None:
    floats = await sdk.embeddings.create(
        model="demo", input=["hello world", "goodbye"], encoding_format="float"
    )
    assert [item.index for item in floats.data] == [0, 1]
    vector = floats.data[0].embedding
    assert abs(sum(v * v for v in vector) - 1.0) < 1e-6
    raw = await sdk.embeddings.with_raw_response.create(
        model="demo", input="hello world", encoding_format="base64"
    )
    encoded = json.loads(raw.content)["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(vector)}f", base64.b64decode(encoded))
    assert decoded == pytest.approx(vector, rel=1e-6)
    assert floats.usage.prompt_tokens > 0


async def test_models_list_reports_sglang_ownership_and_context(sdk: openai.AsyncOpenAI) -> None:
    models = await sdk.models.list()
    assert [model.id for model in models.data] == ["demo"]
    assert models.data[0].owned_by == "sglang"
    assert models.data[0].model_extra == {"root": "demo", "parent": None, "max_model_len": 131072}


async def test_a_tool_result_in_the_history_gets_a_text_answer(sdk: openai.AsyncOpenAI) -> None:
    question: list[Any] = [{"role": "user", "content": "What is the weather in Rome?"}]
    first = await sdk.chat.completions.create(
        model="demo", messages=question, tools=[WEATHER_TOOL], max_tokens=200
    )
    calls = first.choices[0].message.tool_calls
    assert calls is not None
    follow_up = [
        *question,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": '{"celsius": 21}'},
    ]
    second = await sdk.chat.completions.create(
        model="demo", messages=follow_up, tools=[WEATHER_TOOL], max_tokens=50
    )
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content
    assert second.usage is not None
    assert second.usage.prompt_tokens > first.usage.prompt_tokens  # type: ignore[union-attr]
