"""OpenAI wire types and the pure logic around them (no I/O, no framework imports).

Public API (what the gateway uses):

    from warmgate.proxy.wire import (
        decode_chat_completion, decode_completion, decode_embedding, RequestView,
        rewrite_request, encode_embeddings_base64,
    )

    view = decode_chat_completion(body)   # bytes -> RequestView; raises
                                          # proxy.errors.InvalidRequest(message, param=...,
                                          # code=...) for malformed JSON (param None) and for
                                          # every schema violation (param like
                                          # "messages[1].role", "temperature", "stop").
    view.model                  # the model name as the client sent it (alias or name)
    view.stream                 # bool
    view.include_usage          # the client asked for stream_options.include_usage: true
    view.n                      # choices requested (1 when unset)
    view.prefix                 # prompt text for cache-aware routing (<= PREFIX_CHARS chars)
    view.prompt_tokens_estimate # rough prompt size in tokens, the routing weight
    view.encoding_format        # embeddings: "float" | "base64"; None elsewhere
    view.request                # the decoded Struct (CreateChatCompletionRequest, ...)
    body = view.upstream_body(body, served_model)
                                # the original bytes, spliced only where the model name
                                # differs or a stream lacks include_usage (forced true)

    rewrite_request(body, model="served", include_usage=True)   # the splice itself
    encode_embeddings_base64(response_body)  # float vectors -> base64 float32-LE strings,
                                             # when view.encoding_format == "base64"

The rest of the surface (proxy.wire.surface; used by proxy.surface.SurfaceRelay):

    decode_responses(body) / decode_images(body) / decode_transcriptions(body, content_type,
        max_file_bytes=...) -> SurfaceView   # a RequestView plus path, method, content type,
                                             # response_format, previous_response_id, ...
    proxy.wire.audio        multipart form validated in place (no copy of the file), format
                            from name / magic bytes / part type, model + format spliced
    proxy.wire.transcripts  srt / vtt rendered from verbose_json, verbose answers completed
    proxy.wire.images       images_response(): SGLang's answer in OpenAI's ImagesResponse shape
    proxy.wire.responses_stream  ResponsesStreamRelay (event: lines kept, usage, id, end)

Unknown request fields are never rejected and never touched: they reach the backend in the
original bytes. Decoders are built once at import.
"""

from __future__ import annotations

from warmgate.proxy.wire.chat import CreateChatCompletionRequest
from warmgate.proxy.wire.completions import CreateCompletionRequest
from warmgate.proxy.wire.decoding import (
    PREFIX_CHARS,
    RequestView,
    decode_chat_completion,
    decode_completion,
    decode_embedding,
)
from warmgate.proxy.wire.embeddings import (
    CreateEmbeddingRequest,
    encode_embeddings_base64,
    floats_to_base64,
)
from warmgate.proxy.wire.rejection import MALFORMED_JSON, rejection
from warmgate.proxy.wire.rewriter import rewrite_request

__all__ = [
    "MALFORMED_JSON",
    "PREFIX_CHARS",
    "CreateChatCompletionRequest",
    "CreateCompletionRequest",
    "CreateEmbeddingRequest",
    "RequestView",
    "decode_chat_completion",
    "decode_completion",
    "decode_embedding",
    "encode_embeddings_base64",
    "floats_to_base64",
    "rejection",
    "rewrite_request",
]
