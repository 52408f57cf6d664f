"""`CreateEmbeddingRequest` (`POST /v1/embeddings`) as a msgspec Struct."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from warmgate.proxy.wire.completions import TokenIds

EmbeddingInput = (
    str | Annotated[list[str | int | TokenIds], msgspec.Meta(min_length=1, max_length=2048)]
)


class CreateEmbeddingRequest(msgspec.Struct, kw_only=True):
    model: str
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None
