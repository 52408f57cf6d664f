"""Decode and validate a request body once; hand the gateway a small view of what it needs.

The gateway forwards the original bytes, so decoding only validates and extracts: the model,
whether the client streams and asked for usage, `n`, the text prefix for cache-aware routing,
a prompt-token estimate to weigh the request, and the embeddings encoding. Decoders are built
once here; a decode never re-encodes the body.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.wire.audio import CreateTranscriptionRequest
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
from warmgate.proxy.wire.images import CreateImageRequest
from warmgate.proxy.wire.rejection import rejection
from warmgate.proxy.wire.responses import CreateResponse
from warmgate.proxy.wire.rewriter import INCLUDE_USAGE, insert_member, rewrite_request

# How much prompt text the router sees: enough to tell shared system prompts and
# conversations apart, small enough to keep routing state bounded.
PREFIX_CHARS = 4096
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = 85

Endpoint = Literal[
    "chat.completions",
    "completions",
    "embeddings",
    "responses",
    "images.generations",
    "audio.transcriptions",
]
# Streams whose usage arrives only when `stream_options.include_usage` asks for it.
USAGE_STREAMS = frozenset({"chat.completions", "completions"})
WireRequest = (
    CreateChatCompletionRequest
    | CreateCompletionRequest
    | CreateEmbeddingRequest
    | CreateResponse
    | CreateImageRequest
    | CreateTranscriptionRequest
)


class RequestView(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway needs from a validated request; `request` holds the decoded whole."""

    endpoint: Endpoint
    model: str
    stream: bool
    # The client asked for the final usage chunk (stream_options.include_usage: true).
    include_usage: bool
    n: int
    # Prompt text (messages' text joined by spaces), at most PREFIX_CHARS, for routing.
    prefix: str
    prompt_tokens_estimate: int
    # Embeddings only: the encoding the client asked for ("float" when it did not say).
    encoding_format: Literal["float", "base64"] | None
    request: WireRequest
    # The body has no `stream_options` member at all (so one can be added without a scan).
    stream_options_absent: bool = False

    def upstream_body(self, body: bytes | bytearray, served_model: str) -> bytes:
        """The bytes to send upstream: `body` itself unless the model name or usage must change.

        Streams always ask the backend for usage so every stream can be accounted; the relay
        drops the usage chunk again when `include_usage` is False.
        """
        if isinstance(body, bytearray):  # only the multipart routes buffer into their own
            body = bytes(body)
        model = served_model if served_model != self.model else None
        force_usage = self.stream and not self.include_usage and self.endpoint in USAGE_STREAMS
        if model is None and not force_usage:
            return body
        if model is None and self.stream_options_absent:
            return insert_member(body, b'"stream_options":' + INCLUDE_USAGE)
        return rewrite_request(body, model=model, include_usage=force_usage)


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


def decode_chat_completion(body: bytes, *, prefix_chars: int = PREFIX_CHARS) -> RequestView:
    """Validate a `POST /v1/chat/completions` body; raise InvalidRequest naming the field."""
    try:
        request = _chat.decode(body)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
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


def decode_completion(body: bytes, *, prefix_chars: int = PREFIX_CHARS) -> RequestView:
    """Validate a `POST /v1/completions` body; raise InvalidRequest naming the field."""
    try:
        request = _completion.decode(body)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
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


def decode_embedding(body: bytes, *, prefix_chars: int = PREFIX_CHARS) -> RequestView:
    """Validate a `POST /v1/embeddings` body; raise InvalidRequest naming the field."""
    try:
        request = _embedding.decode(body)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
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
