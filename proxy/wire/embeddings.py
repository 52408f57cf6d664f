"""`CreateEmbeddingRequest` (`POST /v1/embeddings`) as a msgspec Struct."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from warmgate.proxy.wire.completions import TokenIds

# No embedding model is wider than this (the widest in use have 4,096 to 8,192 dimensions):
# a larger `dimensions` is a 400 whatever the model's `embedding_dimensions` says, so that no
# backend is asked to allocate for one.
MAX_EMBEDDING_DIMENSIONS = 16_384

EmbeddingInput = (
    str | Annotated[list[str | int | TokenIds], msgspec.Meta(min_length=1, max_length=2048)]
)


class CreateEmbeddingRequest(msgspec.Struct, kw_only=True):
    model: str
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, msgspec.Meta(ge=1, le=MAX_EMBEDDING_DIMENSIONS)] | None = None
    user: str | None = None
