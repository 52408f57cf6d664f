"""Decode and validate a request body once; hand the gateway a small view of what it needs.

The gateway forwards the original bytes, so decoding only validates and extracts: the model,
whether the client streams and asked for usage, `n`, the text prefix for cache-aware routing,
a prompt-token estimate to weigh the request, and the embeddings encoding. Decoders are built
once here; a decode never re-encodes the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import msgspec

from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.wire.audio import (
    MAX_AUDIO_BYTES,
    decode_transcription,
)
from warmgate.proxy.wire.chat import (
    ChatCompletionMessageToolCall,
    ChatCompletionNamedToolChoice,
    ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestFunctionMessage,
    ChatCompletionRequestMessage,
    ChatCompletionRequestMessageContentPartImage,
    ChatCompletionRequestMessageContentPartText,
    ChatCompletionTool,
    CreateChatCompletionRequest,
)
from warmgate.proxy.wire.completions import CreateCompletionRequest, prompt_form
from warmgate.proxy.wire.embeddings import CreateEmbeddingRequest
from warmgate.proxy.wire.fields import ChatCompletionStreamOptions
from warmgate.proxy.wire.images import decode_image_request
from warmgate.proxy.wire.rejection import rejection, too_deep
from warmgate.proxy.wire.responses import decode_response_request
from warmgate.proxy.wire.views import (
    PREFIX_CHARS,
    RESPONSE_ID_PREFIX,
    RequestView,
)

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = 85

_chat = msgspec.json.Decoder(CreateChatCompletionRequest)
_completion = msgspec.json.Decoder(CreateCompletionRequest)
_embedding = msgspec.json.Decoder(CreateEmbeddingRequest)


def _message_texts(message: ChatCompletionRequestMessage) -> tuple[list[str], int]:
    """The text pieces of one message, and how many images it carries."""
    if isinstance(message, ChatCompletionRequestFunctionMessage):
        return ([message.content] if message.content else []), 0
    content = message.content
    if content is None:
        texts: list[str] = []
    elif isinstance(content, str):
        texts = [content]
    else:
        texts = [
            part.text
            for part in content
            if isinstance(part, ChatCompletionRequestMessageContentPartText)
        ]
    images = 0
    if not isinstance(content, str | None):
        images = sum(
            isinstance(part, ChatCompletionRequestMessageContentPartImage) for part in content
        )
    if isinstance(message, ChatCompletionRequestAssistantMessage) and message.tool_calls:
        for call in message.tool_calls:
            if isinstance(call, ChatCompletionMessageToolCall):
                texts.append(call.function.arguments)
            else:
                texts.append(call.custom.input)
    return texts, images


def _prefix(pieces: list[str], limit: int) -> str:
    out: list[str] = []
    size = 0
    for piece in pieces:
        if size >= limit:
            break
        out.append(piece[: limit - size])
        size += len(out[-1]) + 1
    return " ".join(out)[:limit]


def _stream_checks(stream: bool | None, options: object) -> None:
    if options is not None and options is not msgspec.UNSET and stream is not True:
        raise InvalidRequest(
            "Invalid value for 'stream_options': Setting stream_options is only allowed when "
            "'stream' is true.",
            param="stream_options",
            code="invalid_value",
        )


def _tool_checks(request: CreateChatCompletionRequest) -> None:
    """OpenAI's rules that tie `tool_choice` and `parallel_tool_calls` to `tools`."""
    choice = request.tool_choice
    if not request.tools:
        if choice is not None and choice not in ("none", "auto"):
            raise InvalidRequest(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified.",
                param="tool_choice",
                code="invalid_value",
            )
        if request.parallel_tool_calls is not None:
            raise InvalidRequest(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only "
                "allowed when 'tools' are specified.",
                param="parallel_tool_calls",
                code="invalid_value",
            )
        return
    if isinstance(choice, ChatCompletionNamedToolChoice):
        names = {t.function.name for t in request.tools if isinstance(t, ChatCompletionTool)}
        if choice.function.name not in names:
            raise InvalidRequest(
                f"Invalid value for 'tool_choice': no function named "
                f"'{choice.function.name}' was specified in the 'tools' parameter.",
                param="tool_choice",
                code="invalid_value",
            )


def decode_chat_completion(
    body: bytes | bytearray, *, prefix_chars: int = PREFIX_CHARS
) -> RequestView:
    """Validate a `POST /v1/chat/completions` body; raise InvalidRequest naming the field."""
    try:
        request = _chat.decode(body)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
    except RecursionError:
        raise too_deep() from None
    _stream_checks(request.stream, request.stream_options)
    if request.top_logprobs is not None and request.logprobs is not True:
        raise InvalidRequest(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )
    _tool_checks(request)
    pieces: list[str] = []
    chars = images = 0
    for message in request.messages:
        texts, message_images = _message_texts(message)
        pieces.extend(texts)
        images += message_images
        chars += sum(len(text) for text in texts)
    estimate = (
        chars // CHARS_PER_TOKEN
        + TOKENS_PER_MESSAGE * len(request.messages)
        + TOKENS_PER_IMAGE * images
    )
    options = request.stream_options
    return RequestView(
        endpoint="chat.completions",
        model=request.model,
        stream=request.stream is True,
        include_usage=_asks_usage(options),
        n=request.n or 1,
        prefix=_prefix(pieces, prefix_chars),
        prompt_tokens_estimate=estimate,
        encoding_format=None,
        request=request,
        stream_options_absent=options is msgspec.UNSET,
    )


def _asks_usage(options: ChatCompletionStreamOptions | msgspec.UnsetType | None) -> bool:
    return isinstance(options, ChatCompletionStreamOptions) and options.include_usage is True


def _prompt_shape(
    items: str | list[str | int | list[int]], param: str, *, allow_empty_text: bool
) -> tuple[list[str], int]:
    """Check a prompt/input is one of the spec's forms; its texts and a token estimate."""
    if isinstance(items, str):
        if not items and not allow_empty_text:
            raise InvalidRequest(f"'{param}' cannot be an empty string.", param=param)
        return [items], len(items) // CHARS_PER_TOKEN + 1
    form = prompt_form(items)
    if form is None:
        raise InvalidRequest(
            f"Invalid '{param}': an array must hold only strings, only token ids, or only "
            "arrays of token ids.",
            param=param,
            code="invalid_type",
        )
    if form is int:
        return [], len(items)
    if form is list:
        return [], sum(len(ids) for ids in items if isinstance(ids, list))
    texts = [text for text in items if isinstance(text, str)]
    if not allow_empty_text and any(not text for text in texts):
        raise InvalidRequest(f"'{param}' cannot contain an empty string.", param=param)
    return texts, sum(len(text) // CHARS_PER_TOKEN + 1 for text in texts)


def decode_completion(body: bytes | bytearray, *, prefix_chars: int = PREFIX_CHARS) -> RequestView:
    """Validate a `POST /v1/completions` body; raise InvalidRequest naming the field."""
    try:
        request = _completion.decode(body)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
    except RecursionError:
        raise too_deep() from None
    _stream_checks(request.stream, request.stream_options)
    texts: list[str] = []
    estimate = 0
    if request.prompt is not None:
        texts, estimate = _prompt_shape(request.prompt, "prompt", allow_empty_text=True)
    options = request.stream_options
    return RequestView(
        endpoint="completions",
        model=request.model,
        stream=request.stream is True,
        include_usage=_asks_usage(options),
        n=request.n or 1,
        prefix=_prefix(texts, prefix_chars),
        prompt_tokens_estimate=estimate,
        encoding_format=None,
        request=request,
        stream_options_absent=options is msgspec.UNSET,
    )


def decode_embedding(body: bytes | bytearray, *, prefix_chars: int = PREFIX_CHARS) -> RequestView:
    """Validate a `POST /v1/embeddings` body; raise InvalidRequest naming the field."""
    try:
        request = _embedding.decode(body)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
    except RecursionError:
        raise too_deep() from None
    texts, estimate = _prompt_shape(request.input, "input", allow_empty_text=False)
    return RequestView(
        endpoint="embeddings",
        model=request.model,
        stream=False,
        include_usage=False,
        n=1,
        prefix=_prefix(texts, prefix_chars),
        prompt_tokens_estimate=estimate,
        encoding_format=request.encoding_format,
        request=request,
    )


def response_id(value: str, param: str) -> str:
    """A stored response's id as the client sent it, refused with OpenAI's 400 when it cannot
    be one (only a well-formed id unknown to the gateway is a 404)."""
    if not value.startswith(RESPONSE_ID_PREFIX):
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise InvalidRequest(
            f"Invalid '{param}': '{shown}'. Expected an ID that begins with "
            f"'{RESPONSE_ID_PREFIX}'.",
            param=param,
            code="invalid_value",
        )
    return value


def decode_responses(body: bytes | bytearray, *, prefix_chars: int = PREFIX_CHARS) -> RequestView:
    """Validate a `POST /v1/responses` body."""
    request, prefix, estimate = decode_response_request(bytes(body))
    previous = request.previous_response_id
    return RequestView(
        endpoint="responses",
        model=request.model,
        stream=request.stream is True,
        include_usage=False,
        n=1,
        prefix=prefix[:prefix_chars],
        prompt_tokens_estimate=estimate,
        encoding_format=None,
        request=request,
        response_ref=None if previous is None else response_id(previous, "previous_response_id"),
    )


def decode_stored_response(endpoint: str, path_params: Mapping[str, str]) -> RequestView:
    """`GET /v1/responses/{response_id}` or its `/cancel`: the id from the path; the model is
    the one the response was created under, found from its binding."""
    return RequestView(
        endpoint=endpoint,
        model="",
        stream=False,
        include_usage=False,
        n=1,
        prefix="",
        prompt_tokens_estimate=0,
        encoding_format=None,
        request=None,
        response_ref=response_id(path_params.get("response_id", ""), "response_id"),
        response_ref_param="response_id",
    )


class ModelRequest(Protocol):
    """A passthrough endpoint's request type: any Struct with a `model` field."""

    model: str


def decode_passthrough(
    body: bytes | bytearray, request_type: type[msgspec.Struct], endpoint: str
) -> RequestView:
    """Validate a body against a passthrough endpoint's own Struct (it must name its `model`);
    routed by load alone (no prompt text is kept), weighed by its size."""
    try:
        request = msgspec.json.decode(body, type=request_type)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
    model = getattr(request, "model", None)
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "Missing required parameter: 'model'.",
            param="model",
            code="missing_required_parameter",
        )
    return RequestView(
        endpoint=endpoint,
        model=model,
        stream=False,
        include_usage=False,
        n=1,
        prefix="",
        prompt_tokens_estimate=len(body) // CHARS_PER_TOKEN + 1,
        encoding_format=None,
        request=request,
    )


def decode_images(body: bytes | bytearray, *, prefix_chars: int = PREFIX_CHARS) -> RequestView:
    """Validate a `POST /v1/images/generations` body."""
    request, model = decode_image_request(bytes(body))
    return RequestView(
        endpoint="images.generations",
        model=model,
        stream=False,
        include_usage=False,
        n=request.n or 1,
        prefix=request.prompt[:prefix_chars],
        prompt_tokens_estimate=len(request.prompt) // CHARS_PER_TOKEN + 1,
        encoding_format=None,
        request=request,
    )


def decode_transcriptions(
    body: bytes | bytearray, content_type: str | None, *, max_file_bytes: int = MAX_AUDIO_BYTES
) -> RequestView:
    """Validate a `POST /v1/audio/transcriptions` multipart form, in place."""
    request = decode_transcription(body, content_type, max_file_bytes=max_file_bytes)
    return RequestView(
        endpoint="audio.transcriptions",
        model=request.model,
        stream=False,
        include_usage=False,
        n=1,
        prefix="",
        # A weight for routing: about a token per 1 KB of compressed audio.
        prompt_tokens_estimate=request.file.size // 1024 + 1,
        encoding_format=None,
        request=request,
    )
