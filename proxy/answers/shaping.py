"""The respond stage's interface: how each endpoint's answer is made the client's.

A whole answer goes through a `Shape` function: the backend's bytes in, the client's bytes,
content type, usage and any stored response's id out. A stream goes through a
`StreamTranslator` made by a `Translate` function. The endpoint table (`proxy.endpoints`)
names one of each per endpoint; the functions here are those of the OpenAI surface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from warmgate.proxy.answers.base64_vectors import encode_embeddings_base64
from warmgate.proxy.answers.completions import CompletionUsage, answer_head, normalize_body
from warmgate.proxy.answers.generated_images import ImagesAnswerError, images_response
from warmgate.proxy.answers.responses_api import (
    ResponsesStreamRelay,
    completion_usage,
    drop_unset_nulls,
    public_model,
    read_response,
)
from warmgate.proxy.answers.sse import SseRelay
from warmgate.proxy.answers.transcripts import TranscriptError, render
from warmgate.proxy.errors import BackendError, GatewayError
from warmgate.proxy.media import JSON
from warmgate.proxy.wire.audio import CreateTranscriptionRequest
from warmgate.proxy.wire.images import CreateImageRequest
from warmgate.proxy.wire.views import RequestView


class AnswerContext(msgspec.Struct, frozen=True):
    """What shaping an answer needs to know of its request."""

    request_id: str
    # (served, public): the name the backend echoes, and the one the client knows.
    model_names: tuple[str, str]
    view: RequestView


class Shaped(msgspec.Struct, frozen=True):
    payload: bytes
    content_type: str
    usage: CompletionUsage | None = None
    # A stored response the answer created: bound to its backend, so that it can be found.
    response_id: str | None = None


class StreamTranslator(Protocol):
    """Feed it the backend's bytes, it returns the client's complete events; after the
    stream it tells what was seen."""

    usage: CompletionUsage | None
    token_chunks: int
    complete: bool
    failed: bool

    def feed(self, chunk: bytes) -> bytes: ...

    def fail(self, error: GatewayError) -> bytes: ...


Shape = Callable[[bytes, AnswerContext], Shaped]
# The callback receives a stored response's id as soon as the stream names it.
Translate = Callable[[AnswerContext, Callable[[str], None]], StreamTranslator]


def shape_as_is(payload: bytes, context: AnswerContext) -> Shaped:
    """A passthrough endpoint's answer, byte for byte."""
    return Shaped(payload, JSON)


def shape_completion(payload: bytes, context: AnswerContext) -> Shaped:
    """Chat and legacy completions: our response id, the public model, OpenAI's nulls."""
    payload, head = normalize_body(payload, context.request_id, context.model_names[1])
    return Shaped(payload, JSON, head.usage)


def shape_embeddings(payload: bytes, context: AnswerContext) -> Shaped:
    """Vectors as base64 when the client asked for it (the SDKs' default)."""
    usage = answer_head(payload).usage
    if context.view.encoding_format == "base64":
        payload = encode_embeddings_base64(payload)
    return Shaped(payload, JSON, usage)


def shape_response(payload: bytes, context: AnswerContext) -> Shaped:
    """A Responses API object: the public model, no null where OpenAI has none."""
    payload = public_model(drop_unset_nulls(payload), context.model_names)
    head = read_response(payload)
    usage = completion_usage(head.usage) if head.usage is not None else None
    return Shaped(payload, JSON, usage, head.id)


def shape_images(payload: bytes, context: AnswerContext) -> Shaped:
    """OpenAI's ImagesResponse: data URLs, or base64 when asked for."""
    request = context.view.request
    asked = request.response_format if isinstance(request, CreateImageRequest) else None
    try:
        return Shaped(images_response(payload, asked or "url"), JSON)
    except ImagesAnswerError:
        raise BackendError("The model backend's answer could not be read.") from None


def shape_transcription(payload: bytes, context: AnswerContext) -> Shaped:
    """A transcript in the format asked for (srt and vtt rendered here)."""
    request = context.view.request
    if not isinstance(request, CreateTranscriptionRequest):
        raise TypeError(f"{context.view.endpoint} is not a transcription")
    try:
        body, content_type = render(
            request.response_format,
            payload,
            language=request.language,
            temperature=request.temperature,
        )
    except TranscriptError:
        raise BackendError("The model backend's answer could not be read.") from None
    return Shaped(body, content_type)


def translate_completion(
    context: AnswerContext, on_response_id: Callable[[str], None]
) -> StreamTranslator:
    """Chat and completion streams: `data:` events, our id, usage only when asked for."""
    return SseRelay(
        context.request_id,
        forward_usage=context.view.include_usage,
        model_names=context.model_names,
    )


def translate_response(
    context: AnswerContext, on_response_id: Callable[[str], None]
) -> StreamTranslator:
    """Responses streams: named events kept, the response bound as soon as it is named."""
    return ResponsesStreamRelay(context.model_names, on_response_id=on_response_id)
