"""Chat completion bodies: what the decoder accepts, what it rejects, and with which param."""

from __future__ import annotations

import json
from typing import Any

import pytest

from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.wire import MALFORMED_JSON, decode_chat_completion
from warmgate.proxy.wire.chat import (
    ChatCompletionAllowedToolsChoice,
    ChatCompletionNamedToolChoice,
    ChatCompletionNamedToolChoiceCustom,
    ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestDeveloperMessage,
    ChatCompletionRequestFunctionMessage,
    ChatCompletionRequestMessageContentPartAudio,
    ChatCompletionRequestMessageContentPartFile,
    ChatCompletionRequestMessageContentPartImage,
    ChatCompletionRequestMessageContentPartRefusal,
    ChatCompletionRequestMessageContentPartText,
    ChatCompletionRequestSystemMessage,
    ChatCompletionRequestToolMessage,
    ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    ResponseFormatText,
)

USER = {"role": "user", "content": "Say hi"}


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "demo", "messages": [USER], **fields}).encode()


def chat(request: bytes) -> CreateChatCompletionRequest:
    decoded = decode_chat_completion(request).request
    assert isinstance(decoded, CreateChatCompletionRequest)
    return decoded


def rejected_param(request: bytes) -> str | None:
    with pytest.raises(InvalidRequest) as caught:
        decode_chat_completion(request)
    error = caught.value
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.message
    return error.param


INVALID: list[tuple[str, bytes, str | None]] = [
    ("temperature above 2", body(temperature=2.5), "temperature"),
    ("temperature below 0", body(temperature=-0.1), "temperature"),
    ("temperature as a string", body(temperature="hot"), "temperature"),
    ("top_p above 1", body(top_p=1.5), "top_p"),
    ("n of zero", body(n=0), "n"),
    ("n as a float", body(n=1.5), "n"),
    ("presence_penalty below -2", body(presence_penalty=-3), "presence_penalty"),
    ("frequency_penalty above 2", body(frequency_penalty=2.01), "frequency_penalty"),
    ("top_logprobs above 20", body(logprobs=True, top_logprobs=21), "top_logprobs"),
    ("top_logprobs without logprobs", body(top_logprobs=2), "top_logprobs"),
    ("five stop sequences", body(stop=["a", "b", "c", "d", "e"]), "stop"),
    ("stop as a number", body(stop=7), "stop"),
    ("max_tokens of zero", body(max_tokens=0), "max_tokens"),
    ("max_completion_tokens negative", body(max_completion_tokens=-5), "max_completion_tokens"),
    (
        "stream_options without stream",
        body(stream_options={"include_usage": True}),
        "stream_options",
    ),
    (
        "stream_options with stream false",
        body(stream=False, stream_options={"include_usage": True}),
        "stream_options",
    ),
    ("stream as a string", body(stream="yes"), "stream"),
    ("missing model", json.dumps({"messages": [USER]}).encode(), "model"),
    ("missing messages", json.dumps({"model": "demo"}).encode(), "messages"),
    ("empty messages", body(messages=[]), "messages"),
    ("model as a number", json.dumps({"model": 5, "messages": [USER]}).encode(), "model"),
    ("unknown role", body(messages=[USER, {"role": "robot", "content": "x"}]), "messages[1].role"),
    ("missing role", body(messages=[{"content": "x"}]), "messages[0].role"),
    ("user without content", body(messages=[{"role": "user"}]), "messages[0].content"),
    (
        "user content as a number",
        body(messages=[{"role": "user", "content": 3}]),
        "messages[0].content",
    ),
    (
        "empty content parts",
        body(messages=[{"role": "user", "content": []}]),
        "messages[0].content",
    ),
    (
        "unknown content part type",
        body(messages=[{"role": "user", "content": [{"type": "video", "video": {}}]}]),
        "messages[0].content[0].type",
    ),
    (
        "text part without text",
        body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages[0].content[0].text",
    ),
    (
        "image detail out of enum",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/y.png", "detail": "ultra"},
                        }
                    ],
                }
            ]
        ),
        "messages[0].content[0].image_url.detail",
    ),
    (
        "audio format out of enum",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "ogg"}}
                    ],
                }
            ]
        ),
        "messages[0].content[0].input_audio.format",
    ),
    (
        "image part in a system message",
        body(
            messages=[
                {
                    "role": "system",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ]
        ),
        "messages[0].content[0].type",
    ),
    (
        "tool message without tool_call_id",
        body(messages=[{"role": "tool", "content": "42"}]),
        "messages[0].tool_call_id",
    ),
    (
        "function message without name",
        body(messages=[{"role": "function", "content": "x"}]),
        "messages[0].name",
    ),
    (
        "assistant tool call with unknown type",
        body(messages=[{"role": "assistant", "tool_calls": [{"id": "c", "type": "web"}]}]),
        "messages[0].tool_calls[0].type",
    ),
    (
        "assistant tool call arguments as an object",
        body(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                }
            ]
        ),
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        "tool name with a space",
        body(tools=[{"type": "function", "function": {"name": "get weather"}}]),
        "tools[0].function.name",
    ),
    (
        "tool name longer than 64",
        body(tools=[{"type": "function", "function": {"name": "f" * 65}}]),
        "tools[0].function.name",
    ),
    (
        "tool parameters not an object",
        body(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        "tools[0].function.parameters",
    ),
    ("tool of unknown type", body(tools=[{"type": "retrieval"}]), "tools[0].type"),
    (
        "custom tool grammar syntax out of enum",
        body(
            tools=[
                {
                    "type": "custom",
                    "custom": {
                        "name": "g",
                        "format": {
                            "type": "grammar",
                            "grammar": {"definition": "x", "syntax": "peg"},
                        },
                    },
                }
            ]
        ),
        "tools[0].custom.format.grammar.syntax",
    ),
    ("tool_choice string out of enum", body(tool_choice="always"), "tool_choice"),
    (
        "named tool_choice without a name",
        body(tool_choice={"type": "function", "function": {}}),
        "tool_choice.function.name",
    ),
    (
        "allowed_tools mode out of enum",
        body(tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "any", "tools": []}}),
        "tool_choice.allowed_tools.mode",
    ),
    (
        "response_format of unknown type",
        body(response_format={"type": "xml"}),
        "response_format.type",
    ),
    (
        "json_schema without a name",
        body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
        "response_format.json_schema.name",
    ),
    (
        "json_schema name with a dot",
        body(response_format={"type": "json_schema", "json_schema": {"name": "a.b"}}),
        "response_format.json_schema.name",
    ),
    ("logit_bias above 100", body(logit_bias={"50256": 101}), "logit_bias"),
    ("logit_bias key not a token id", body(logit_bias={"the": 5}), "logit_bias"),
    ("tool_choice required without tools", body(tool_choice="required"), "tool_choice"),
    (
        "named tool_choice without tools",
        body(tool_choice={"type": "function", "function": {"name": "f"}}),
        "tool_choice",
    ),
    (
        "named tool_choice not among the tools",
        body(
            tools=[{"type": "function", "function": {"name": "f"}}],
            tool_choice={"type": "function", "function": {"name": "g"}},
        ),
        "tool_choice",
    ),
    ("parallel_tool_calls without tools", body(parallel_tool_calls=False), "parallel_tool_calls"),
    ("metadata value not a string", body(metadata={"k": 1}), "metadata"),
    ("reasoning_effort out of enum", body(reasoning_effort="extreme"), "reasoning_effort"),
    ("service_tier out of enum", body(service_tier="gold"), "service_tier"),
    ("audio output without a format", body(audio={"voice": "alloy"}), "audio.format"),
    ("modalities out of enum", body(modalities=["video"]), "modalities[0]"),
    ("seed beyond int64", body(seed=2**63), "seed"),
    (
        "prediction of unknown type",
        body(prediction={"type": "diff", "content": "x"}),
        "prediction.type",
    ),
    ("safety_identifier longer than 64", body(safety_identifier="x" * 65), "safety_identifier"),
]


@pytest.mark.parametrize(
    ("request_body", "param"),
    [(request, param) for _, request, param in INVALID],
    ids=[name for name, _, _ in INVALID],
)
def test_an_invalid_chat_request_is_a_400_naming_the_field(request_body: bytes, param: str) -> None:
    assert rejected_param(request_body) == param


@pytest.mark.parametrize(
    "request_body",
    [b"", b"{", b"{'model': 'demo'}", b'{"model": "demo",}', b"\xff\xfe", body() + b" x"],
    ids=["empty", "truncated", "single-quotes", "trailing-comma", "not-utf8", "trailing-garbage"],
)
def test_malformed_json_is_a_400_without_param(request_body: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_chat_completion(request_body)
    assert caught.value.param is None
    assert caught.value.message == MALFORMED_JSON


@pytest.mark.parametrize("request_body", [b"[]", b'"text"', b"null", b"42"])
def test_a_body_that_is_not_an_object_is_a_400(request_body: bytes) -> None:
    assert rejected_param(request_body) is None


def test_missing_required_parameter_uses_openai_code_and_wording() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_chat_completion(json.dumps({"model": "demo"}).encode())
    assert caught.value.instance_code == "missing_required_parameter"
    assert caught.value.message == "Missing required parameter: 'messages'."


def test_a_value_above_its_maximum_uses_openai_code() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_chat_completion(body(temperature=3))
    assert caught.value.instance_code == "decimal_above_max_value"
    assert "temperature" in caught.value.message


def test_every_message_role_is_accepted() -> None:
    messages = [
        {"role": "developer", "content": "Be brief.", "name": "dev"},
        {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
        {"role": "user", "content": "What is the weather?", "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "call_2", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "1"}]},
        {"role": "function", "name": "weather", "content": None},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "It"}, {"type": "refusal", "refusal": "no"}],
            "refusal": None,
            "audio": {"id": "audio_1"},
        },
    ]
    decoded = chat(body(messages=messages))
    roles: list[type] = [
        ChatCompletionRequestDeveloperMessage,
        ChatCompletionRequestSystemMessage,
        ChatCompletionRequestUserMessage,
        ChatCompletionRequestAssistantMessage,
        ChatCompletionRequestToolMessage,
        ChatCompletionRequestToolMessage,
        ChatCompletionRequestFunctionMessage,
        ChatCompletionRequestAssistantMessage,
    ]
    assert [type(message) for message in decoded.messages] == roles
    last = decoded.messages[-1]
    assert isinstance(last, ChatCompletionRequestAssistantMessage)
    assert isinstance(last.content, list)
    assert isinstance(last.content[1], ChatCompletionRequestMessageContentPartRefusal)


def test_every_user_content_part_type_is_accepted() -> None:
    parts = [
        {
            "type": "text",
            "text": "Describe these.",
            "prompt_cache_breakpoint": {"mode": "explicit"},
        },
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
        },
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "JVBERi0="}},
        {"type": "file", "file": {"file_id": "file-abc"}},
    ]
    message = chat(body(messages=[{"role": "user", "content": parts}])).messages[0]
    assert isinstance(message, ChatCompletionRequestUserMessage)
    assert isinstance(message.content, list)
    assert [type(part) for part in message.content] == [
        ChatCompletionRequestMessageContentPartText,
        ChatCompletionRequestMessageContentPartImage,
        ChatCompletionRequestMessageContentPartAudio,
        ChatCompletionRequestMessageContentPartFile,
        ChatCompletionRequestMessageContentPartFile,
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", "none"),
        ("auto", "auto"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "weather"}}, ChatCompletionNamedToolChoice),
        ({"type": "custom", "custom": {"name": "sql"}}, ChatCompletionNamedToolChoiceCustom),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "weather"}}],
                },
            },
            ChatCompletionAllowedToolsChoice,
        ),
    ],
)
def test_every_tool_choice_form_is_accepted(choice: Any, expected: Any) -> None:
    tools = [
        {"type": "function", "function": {"name": "weather"}},
        {"type": "custom", "custom": {"name": "sql"}},
    ]
    decoded = chat(body(tools=tools, tool_choice=choice)).tool_choice
    assert decoded == expected if isinstance(expected, str) else isinstance(decoded, expected)


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, ResponseFormatText),
        ({"type": "json_object"}, ResponseFormatJsonObject),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "person_v2",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
            },
            ResponseFormatJsonSchema,
        ),
    ],
)
def test_every_response_format_form_is_accepted(
    response_format: dict[str, Any], expected: type
) -> None:
    assert isinstance(chat(body(response_format=response_format)).response_format, expected)


def test_tools_of_both_kinds_and_legacy_functions_are_accepted() -> None:
    decoded = chat(
        body(
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather-2",
                        "description": "d",
                        "strict": True,
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                },
                {"type": "custom", "custom": {"name": "sql", "format": {"type": "text"}}},
                {
                    "type": "custom",
                    "custom": {
                        "name": "re",
                        "format": {
                            "type": "grammar",
                            "grammar": {"definition": "a+", "syntax": "regex"},
                        },
                    },
                },
            ],
            parallel_tool_calls=False,
            functions=[{"name": "legacy", "parameters": {}}],
            function_call={"name": "legacy"},
        )
    )
    assert decoded.tools is not None
    assert len(decoded.tools) == 3


def test_every_sampling_field_at_its_bounds_is_accepted() -> None:
    decoded = chat(
        body(
            temperature=0,
            top_p=1,
            n=128,
            presence_penalty=-2,
            frequency_penalty=2,
            logprobs=True,
            top_logprobs=20,
            stop=["a", "b", "c", "d"],
            max_tokens=1,
            max_completion_tokens=1,
            seed=-(2**63),
            logit_bias={"1": -100, "2": 100},
            stream=True,
            stream_options={"include_usage": True, "include_obfuscation": False},
            store=True,
            metadata={"k": "v"},
            service_tier="flex",
            reasoning_effort="xhigh",
            verbosity="low",
            modalities=["text", "audio"],
            audio={"voice": {"id": "v1"}, "format": "pcm16"},
            prediction={"type": "content", "content": [{"type": "text", "text": "x"}]},
            web_search_options={
                "search_context_size": "high",
                "user_location": {"type": "approximate", "approximate": {"city": "Paris"}},
            },
            user="u",
            safety_identifier="s" * 64,
            prompt_cache_key="k",
            prompt_cache_retention="24h",
            prompt_cache_options={"ttl": "30m", "mode": "explicit"},
            moderation={"model": "omni-moderation-latest"},
        )
    )
    assert decoded.n == 128
    assert decoded.stop == ["a", "b", "c", "d"]


def test_explicit_nulls_are_accepted_for_nullable_fields() -> None:
    nullable = [
        "temperature",
        "top_p",
        "n",
        "stop",
        "seed",
        "max_tokens",
        "logprobs",
        "top_logprobs",
        "stream",
        "stream_options",
        "logit_bias",
        "metadata",
        "service_tier",
        "reasoning_effort",
        "response_format",
        "audio",
        "prediction",
    ]
    decoded = chat(body(**dict.fromkeys(nullable)))
    assert decoded.temperature is None
    assert decoded.stream_options is None


def test_unknown_fields_such_as_sglang_extras_are_accepted() -> None:
    view = decode_chat_completion(
        body(
            top_k=20,
            min_p=0.05,
            regex="[a-z]+",
            chat_template_kwargs={"enable_thinking": False},
            separate_reasoning=True,
            ebnf=None,
        )
    )
    assert view.model == "demo"


def test_the_view_reports_stream_usage_n_and_routing_text() -> None:
    system = {"role": "system", "content": "You are a pirate."}
    view = decode_chat_completion(
        body(
            messages=[system, USER],
            stream=True,
            stream_options={"include_usage": True},
            n=3,
        )
    )
    assert (view.endpoint, view.stream, view.include_usage, view.n) == (
        "chat.completions",
        True,
        True,
        3,
    )
    assert view.prefix == "You are a pirate. Say hi"
    assert view.prompt_tokens_estimate >= 2 * 4
    plain = decode_chat_completion(body())
    assert (plain.stream, plain.include_usage, plain.n, plain.encoding_format) == (
        False,
        False,
        1,
        None,
    )


def test_the_routing_prefix_is_capped() -> None:
    long_text = "x" * 10_000
    view = decode_chat_completion(
        body(messages=[{"role": "user", "content": long_text}]), prefix_chars=100
    )
    assert view.prefix == "x" * 100
    assert view.prompt_tokens_estimate >= 10_000 // 4


def test_images_weigh_on_the_prompt_estimate() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    text_only = decode_chat_completion(
        body(messages=[{"role": "user", "content": [{"type": "text", "text": "cat?"}]}])
    )
    with_image = decode_chat_completion(
        body(messages=[{"role": "user", "content": [{"type": "text", "text": "cat?"}, image]}])
    )
    assert with_image.prompt_tokens_estimate > text_only.prompt_tokens_estimate
    assert with_image.prefix == text_only.prefix == "cat?"
