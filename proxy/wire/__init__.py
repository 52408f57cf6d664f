"""The decode stage: OpenAI's request types, validated once, and the bytes sent upstream.

Pure logic, no I/O and no framework imports. A decoder in `decoding` turns a body into a
`views.RequestView` or raises `proxy.errors.InvalidRequest` naming the field (`param` like
`messages[1].role`); the request Structs (`chat`, `completions`, `embeddings`, `responses`,
`images`, `audio`) carry OpenAI's schema names and constraints, and feed the OpenAPI document.
Unknown request fields are never rejected and never touched: they reach the backend in the
original bytes, which `views` and `rewriter` splice only where the model name, the usage flag
or the image format must change. Decoders are built once at import.
"""

from __future__ import annotations

from warmgate.proxy.wire.chat import CreateChatCompletionRequest
from warmgate.proxy.wire.completions import CreateCompletionRequest
from warmgate.proxy.wire.decoding import (
    decode_chat_completion,
    decode_completion,
    decode_embedding,
)
from warmgate.proxy.wire.embeddings import CreateEmbeddingRequest
from warmgate.proxy.wire.rejection import MALFORMED_JSON, rejection
from warmgate.proxy.wire.rewriter import rewrite_request
from warmgate.proxy.wire.views import PREFIX_CHARS, RequestView

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
    "rejection",
    "rewrite_request",
]
