"""Request bodies as SGLang's protocol.py reads them: only the fields the simulator acts on.

Unknown fields are ignored, as pydantic does for SGLang's request models.
"""

from __future__ import annotations

from typing import Any

import msgspec


class ContentPart(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class MessageToolCall(msgspec.Struct, kw_only=True):
    id: str | None = None
    type: str = "function"
    function: FunctionCall


class ChatMessage(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if self.content is None:
            return ""
        return "".join(part.text or "" for part in self.content)


class FunctionDefinition(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, kw_only=True):
    type: str = "function"
    function: FunctionDefinition


class ToolChoiceFunction(msgspec.Struct, kw_only=True):
    name: str


class ToolChoice(msgspec.Struct, kw_only=True):
    type: str = "function"
    function: ToolChoiceFunction


class JsonSchemaFormat(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, kw_only=True):
    type: str
    json_schema: JsonSchemaFormat | None = None
    schema: dict[str, Any] | None = None  # the shortcut ChatCompletionRequest.set_json_schema reads

    def constrained_schema(self) -> Any:
        """The JSON schema the output is held to (None for "text")."""
        if self.type == "json_object":
            return {"type": "object"}
        if self.type != "json_schema":
            return None
        if self.json_schema is not None:
            return self.json_schema.schema
        return self.schema


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


SAMPLING_FIELDS = (
    "temperature", "top_p", "top_k", "min_p", "frequency_penalty", "presence_penalty",
    "repetition_penalty",
)  # fmt: skip


def sampling_of(request: ChatCompletionRequest | CompletionRequest) -> dict[str, object]:
    """The request's sampling fields that are set, under SGLang's sampling_params names."""
    params: dict[str, object] = {}
    for name in SAMPLING_FIELDS:
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    max_new = getattr(request, "max_completion_tokens", None) or request.max_tokens
    if max_new is not None:
        params["max_new_tokens"] = max_new
    return params


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    messages: list[ChatMessage]
    model: str = "default"
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: str | ToolChoice | None = None
    response_format: ResponseFormat | None = None
    stop: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int | None = None
    regex: str | None = None
    ebnf: str | None = None
    separate_reasoning: bool = True
    chat_template_kwargs: dict[str, Any] | None = None
    rid: str | None = None
    seed: int | None = None


class CompletionRequest(msgspec.Struct, kw_only=True):
    prompt: str | list[Any]  # str, [str], [int] or [[int]]: checked by the route
    model: str = "default"
    max_tokens: int | None = 16
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    echo: bool = False
    logprobs: int | None = None
    json_schema: str | None = None
    regex: str | None = None
    ebnf: str | None = None
    response_format: ResponseFormat | None = None
    stop: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool = False
    rid: str | None = None
    seed: int | None = None


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    input: str | list[Any]  # str, [str], [int] or [[int]]: checked by the route
    model: str = "default"
    encoding_format: str = "float"
    dimensions: int | None = None
    rid: str | list[str] | None = None


class GenerateRequest(msgspec.Struct, kw_only=True):
    text: str | list[str] | None = None
    input_ids: list[Any] | None = None
    sampling_params: dict[str, Any] | None = None
    stream: bool = False
    rid: str | None = None


class AbortRequest(msgspec.Struct, kw_only=True):
    rid: str = ""
    abort_all: bool = False


chat_decoder = msgspec.json.Decoder(ChatCompletionRequest)
completion_decoder = msgspec.json.Decoder(CompletionRequest)
embedding_decoder = msgspec.json.Decoder(EmbeddingRequest)
generate_decoder = msgspec.json.Decoder(GenerateRequest)
abort_decoder = msgspec.json.Decoder(AbortRequest)
any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
encode = msgspec.json.Encoder().encode
