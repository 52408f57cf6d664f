"""`CreateResponse` (the Responses API request) as msgspec Structs, and its decode.

The Responses API has dozens of item and tool types; the gateway checks the fields it can judge
(model, ranges, enums, the forms of `input`, `text.format`, `tool_choice`, `reasoning`) and lets
the rest through to the backend, which knows which items and tools it serves.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.wire.fields import (
    FreeFormObject,
    Metadata,
    Temperature,
    ToolName,
    TopLogprobs,
    TopP,
)
from warmgate.proxy.wire.rejection import rejection, too_deep

CHARS_PER_TOKEN = 4


class InputContent(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None


class InputItem(msgspec.Struct, kw_only=True):
    """A message (`role` + `content`) or any other item type (`type` names it)."""

    type: str | None = None
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: str | list[InputContent] | None = None


class ResponseFormatText(msgspec.Struct, tag_field="type", tag="text"):
    pass


class ResponseFormatJsonObject(msgspec.Struct, tag_field="type", tag="json_object"):
    pass


class TextResponseFormatJsonSchema(
    msgspec.Struct, tag_field="type", tag="json_schema", kw_only=True
):
    name: ToolName
    schema: FreeFormObject
    description: str | None = None
    strict: bool | None = None


class ResponseTextParam(msgspec.Struct, kw_only=True):
    format: ResponseFormatText | TextResponseFormatJsonSchema | ResponseFormatJsonObject | None = (
        None
    )
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(msgspec.Struct, kw_only=True):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class Tool(msgspec.Struct, kw_only=True):
    type: str
    name: ToolName | None = None
    parameters: FreeFormObject | None = None


class ToolChoiceObject(msgspec.Struct, kw_only=True):
    type: str
    name: str | None = None


class ResponseStreamOptions(msgspec.Struct, kw_only=True):
    include_obfuscation: bool | None = None


class CreateResponse(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: Annotated[int, msgspec.Meta(ge=16)] | None = None
    max_tool_calls: Annotated[int, msgspec.Meta(ge=1)] | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_logprobs: TopLogprobs | None = None
    stream: bool | None = None
    stream_options: ResponseStreamOptions | None = None
    background: bool | None = None
    store: bool | None = None
    metadata: Metadata | None = None
    parallel_tool_calls: bool | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceObject | None = None
    text: ResponseTextParam | None = None
    reasoning: Reasoning | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    user: str | None = None
    safety_identifier: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    prompt_cache_key: str | None = None


_decoder = msgspec.json.Decoder(CreateResponse)


def _texts(request: CreateResponse) -> list[str]:
    texts = [request.instructions] if request.instructions else []
    if isinstance(request.input, str):
        texts.append(request.input)
    elif request.input is not None:
        for item in request.input:
            if isinstance(item.content, str):
                texts.append(item.content)
            elif item.content is not None:
                texts += [part.text for part in item.content if part.text]
    return texts


def decode_response_request(body: bytes) -> tuple[CreateResponse, str, int]:
    """Validate a `POST /v1/responses` body: (request, routing text, prompt-token estimate)."""
    try:
        request = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
    except RecursionError:
        raise too_deep() from None
    if request.stream_options is not None and request.stream is not True:
        raise InvalidRequest(
            "Invalid value for 'stream_options': Setting stream_options is only allowed when "
            "'stream' is true.",
            param="stream_options",
            code="invalid_value",
        )
    if request.background and request.store is False:
        raise InvalidRequest(
            "Invalid value for 'store': background responses must be stored.",
            param="store",
            code="invalid_value",
        )
    texts = _texts(request)
    estimate = sum(len(text) for text in texts) // CHARS_PER_TOKEN + 1
    return request, " ".join(texts), estimate
