"""`CreateChatCompletionRequest` as msgspec Structs: the whole request type of the spec.

Messages are a union tagged by `role`, content parts and tools unions tagged by `type`, so
one decode pass checks every field's type, enum and range. Unknown fields are ignored by the
decoder (they pass through untouched, since the gateway forwards the original bytes).
Open JSON objects (tool parameters, JSON schemas) are checked to be objects and skipped.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from warmgate.proxy.wire.fields import (
    ChatCompletionStreamOptions,
    ChoiceCount,
    FreeFormObject,
    LogitBias,
    Metadata,
    Penalty,
    Seed,
    ServiceTier,
    StopConfiguration,
    Temperature,
    TokenLimit,
    ToolName,
    TopLogprobs,
    TopP,
)


class PromptCacheBreakpointParam(msgspec.Struct):
    mode: Literal["explicit"]


# --- content parts (tagged by `type`) -----------------------------------------------------


class ChatCompletionRequestMessageContentPartText(
    msgspec.Struct, tag_field="type", tag="text", kw_only=True
):
    text: str
    prompt_cache_breakpoint: PromptCacheBreakpointParam | None = None


class ImageUrl(msgspec.Struct, kw_only=True):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class ChatCompletionRequestMessageContentPartImage(
    msgspec.Struct, tag_field="type", tag="image_url", kw_only=True
):
    image_url: ImageUrl
    prompt_cache_breakpoint: PromptCacheBreakpointParam | None = None


class InputAudio(msgspec.Struct, kw_only=True):
    data: str
    format: Literal["wav", "mp3"]


class ChatCompletionRequestMessageContentPartAudio(
    msgspec.Struct, tag_field="type", tag="input_audio", kw_only=True
):
    input_audio: InputAudio
    prompt_cache_breakpoint: PromptCacheBreakpointParam | None = None


class InputFile(msgspec.Struct, kw_only=True):
    filename: str | None = None
    file_data: str | None = None
    file_id: str | None = None


class ChatCompletionRequestMessageContentPartFile(
    msgspec.Struct, tag_field="type", tag="file", kw_only=True
):
    file: InputFile
    prompt_cache_breakpoint: PromptCacheBreakpointParam | None = None


class ChatCompletionRequestMessageContentPartRefusal(
    msgspec.Struct, tag_field="type", tag="refusal", kw_only=True
):
    refusal: str


TextPart = ChatCompletionRequestMessageContentPartText
ChatCompletionRequestUserMessageContentPart = (
    ChatCompletionRequestMessageContentPartText
    | ChatCompletionRequestMessageContentPartImage
    | ChatCompletionRequestMessageContentPartAudio
    | ChatCompletionRequestMessageContentPartFile
)
ChatCompletionRequestAssistantMessageContentPart = (
    ChatCompletionRequestMessageContentPartText | ChatCompletionRequestMessageContentPartRefusal
)
TextContent = str | Annotated[list[TextPart], msgspec.Meta(min_length=1)]
UserContent = (
    str | Annotated[list[ChatCompletionRequestUserMessageContentPart], msgspec.Meta(min_length=1)]
)
AssistantContent = (
    str
    | Annotated[list[ChatCompletionRequestAssistantMessageContentPart], msgspec.Meta(min_length=1)]
)

# --- assistant tool calls (tagged by `type`) ------------------------------------------------


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str
    arguments: str


class ChatCompletionMessageToolCall(msgspec.Struct, tag_field="type", tag="function", kw_only=True):
    id: str
    function: FunctionCall


class CustomToolCall(msgspec.Struct, kw_only=True):
    name: str
    input: str


class ChatCompletionMessageCustomToolCall(
    msgspec.Struct, tag_field="type", tag="custom", kw_only=True
):
    id: str
    custom: CustomToolCall


ChatCompletionMessageToolCalls = list[
    ChatCompletionMessageToolCall | ChatCompletionMessageCustomToolCall
]

# --- messages (tagged by `role`) -------------------------------------------------------------


class ChatCompletionRequestDeveloperMessage(
    msgspec.Struct, tag_field="role", tag="developer", kw_only=True
):
    content: TextContent
    name: str | None = None


class ChatCompletionRequestSystemMessage(
    msgspec.Struct, tag_field="role", tag="system", kw_only=True
):
    content: TextContent
    name: str | None = None


class ChatCompletionRequestUserMessage(msgspec.Struct, tag_field="role", tag="user", kw_only=True):
    content: UserContent
    name: str | None = None


class AssistantAudio(msgspec.Struct, kw_only=True):
    id: str


class ChatCompletionRequestAssistantMessage(
    msgspec.Struct, tag_field="role", tag="assistant", kw_only=True
):
    content: AssistantContent | None = None
    refusal: str | None = None
    name: str | None = None
    audio: AssistantAudio | None = None
    tool_calls: ChatCompletionMessageToolCalls | None = None
    function_call: FunctionCall | None = None


class ChatCompletionRequestToolMessage(msgspec.Struct, tag_field="role", tag="tool", kw_only=True):
    content: TextContent
    tool_call_id: str


class ChatCompletionRequestFunctionMessage(
    msgspec.Struct, tag_field="role", tag="function", kw_only=True
):
    content: str | None  # required, may be null
    name: str


ChatCompletionRequestMessage = (
    ChatCompletionRequestDeveloperMessage
    | ChatCompletionRequestSystemMessage
    | ChatCompletionRequestUserMessage
    | ChatCompletionRequestAssistantMessage
    | ChatCompletionRequestToolMessage
    | ChatCompletionRequestFunctionMessage
)

# --- tools and tool choice ------------------------------------------------------------------


class FunctionObject(msgspec.Struct, kw_only=True):
    name: ToolName
    description: str | None = None
    parameters: FreeFormObject | None = None
    strict: bool | None = None


class ChatCompletionTool(msgspec.Struct, tag_field="type", tag="function", kw_only=True):
    function: FunctionObject


class CustomToolFormatText(
    msgspec.Struct, tag_field="type", tag="text", forbid_unknown_fields=True
):
    pass


class Grammar(msgspec.Struct, kw_only=True):
    definition: str
    syntax: Literal["lark", "regex"]


class CustomToolFormatGrammar(
    msgspec.Struct, tag_field="type", tag="grammar", kw_only=True, forbid_unknown_fields=True
):
    grammar: Grammar


class CustomToolDefinition(msgspec.Struct, kw_only=True):
    name: ToolName
    description: str | None = None
    format: CustomToolFormatText | CustomToolFormatGrammar | None = None


class CustomToolChatCompletions(msgspec.Struct, tag_field="type", tag="custom", kw_only=True):
    custom: CustomToolDefinition


class ChatCompletionAllowedTools(msgspec.Struct, kw_only=True):
    mode: Literal["auto", "required"]
    tools: list[FreeFormObject]


class ChatCompletionAllowedToolsChoice(
    msgspec.Struct, tag_field="type", tag="allowed_tools", kw_only=True
):
    allowed_tools: ChatCompletionAllowedTools


class NamedFunction(msgspec.Struct, kw_only=True):
    name: str


class ChatCompletionNamedToolChoice(msgspec.Struct, tag_field="type", tag="function", kw_only=True):
    function: NamedFunction


class ChatCompletionNamedToolChoiceCustom(
    msgspec.Struct, tag_field="type", tag="custom", kw_only=True
):
    custom: NamedFunction


ChatCompletionToolChoiceOption = (
    Literal["none", "auto", "required"]
    | ChatCompletionAllowedToolsChoice
    | ChatCompletionNamedToolChoice
    | ChatCompletionNamedToolChoiceCustom
)


class ChatCompletionFunctionCallOption(msgspec.Struct, kw_only=True):
    name: str


class ChatCompletionFunctions(msgspec.Struct, kw_only=True):
    name: ToolName
    description: str | None = None
    parameters: FreeFormObject | None = None


# --- response format ------------------------------------------------------------------------


class ResponseFormatText(msgspec.Struct, tag_field="type", tag="text"):
    pass


class ResponseFormatJsonObject(msgspec.Struct, tag_field="type", tag="json_object"):
    pass


class JsonSchemaFormat(msgspec.Struct, kw_only=True):
    name: ToolName
    description: str | None = None
    schema: FreeFormObject | None = None
    strict: bool | None = None


class ResponseFormatJsonSchema(msgspec.Struct, tag_field="type", tag="json_schema", kw_only=True):
    json_schema: JsonSchemaFormat


ResponseFormat = ResponseFormatText | ResponseFormatJsonSchema | ResponseFormatJsonObject

# --- the smaller options --------------------------------------------------------------------


class PredictionContent(msgspec.Struct, kw_only=True):
    type: Literal["content"]
    content: TextContent


class CustomVoice(msgspec.Struct, forbid_unknown_fields=True):
    id: str


class ChatCompletionAudioParam(msgspec.Struct, kw_only=True):
    voice: str | CustomVoice
    format: Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]


class WebSearchLocation(msgspec.Struct, kw_only=True):
    country: str | None = None
    region: str | None = None
    city: str | None = None
    timezone: str | None = None


class WebSearchUserLocation(msgspec.Struct, kw_only=True):
    type: Literal["approximate"]
    approximate: WebSearchLocation


class WebSearchOptions(msgspec.Struct, kw_only=True):
    user_location: WebSearchUserLocation | None = None
    search_context_size: Literal["low", "medium", "high"] | None = None


class ModerationParam(msgspec.Struct, kw_only=True):
    model: str
    policy: FreeFormObject | None = None


class PromptCacheOptionsParam(msgspec.Struct, kw_only=True):
    ttl: Literal["30m"] | None = None
    mode: Literal["implicit", "explicit"] | None = None


class CreateChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: Annotated[list[ChatCompletionRequestMessage], msgspec.Meta(min_length=1)]
    # sampling
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: ChoiceCount | None = None
    stop: StopConfiguration | None = None
    seed: Seed | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs | None = None
    max_tokens: TokenLimit | None = None
    max_completion_tokens: TokenLimit | None = None
    # streaming
    stream: bool | None = None
    # UNSET (absent) is told apart from null: an absent member can be added without a scan.
    stream_options: ChatCompletionStreamOptions | msgspec.UnsetType | None = msgspec.UNSET
    # tools and output shape
    tools: list[ChatCompletionTool | CustomToolChatCompletions] | None = None
    tool_choice: ChatCompletionToolChoiceOption | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    functions: (
        Annotated[list[ChatCompletionFunctions], msgspec.Meta(min_length=1, max_length=128)] | None
    ) = None
    function_call: Literal["none", "auto"] | ChatCompletionFunctionCallOption | None = None
    prediction: PredictionContent | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: ChatCompletionAudioParam | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    verbosity: Literal["low", "medium", "high"] | None = None
    web_search_options: WebSearchOptions | None = None
    # bookkeeping
    store: bool | None = None
    metadata: Metadata | None = None
    service_tier: ServiceTier | None = None
    user: str | None = None
    safety_identifier: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: PromptCacheOptionsParam | None = None
    moderation: ModerationParam | None = None
