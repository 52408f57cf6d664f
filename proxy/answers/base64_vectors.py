"""Embedding vectors in the base64 form the OpenAI SDKs ask for.

Both SDKs ask for `encoding_format: "base64"` unless the caller chose otherwise, and decode the
string as float32 little-endian. A backend that answers floats anyway gets its vectors encoded
here, so every SDK sees the same numbers.
"""

from __future__ import annotations

import base64
import sys
from array import array

import msgspec


class Embedding(msgspec.Struct, kw_only=True):
    index: int
    embedding: list[float] | str
    object: str = "embedding"


_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw])
_data = msgspec.json.Decoder(list[Embedding])
_encoder = msgspec.json.Encoder()


def floats_to_base64(vector: list[float]) -> str:
    """A vector as base64 of float32 little-endian, the way the SDKs decode it."""
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def encode_embeddings_base64(body: bytes) -> bytes:
    """An embeddings response body whose float vectors are turned into base64 strings.

    Every other field is kept byte for byte (as raw JSON); vectors already in base64 stay as
    they are. A body that is not an embeddings list comes back unchanged.
    """
    try:
        fields = _top_level.decode(body)
        raw_data = fields.get("data")
        if raw_data is None:
            return body
        items = _data.decode(raw_data)
    except (msgspec.DecodeError, RecursionError):
        return body
    if all(isinstance(item.embedding, str) for item in items):
        return body
    for item in items:
        if not isinstance(item.embedding, str):
            item.embedding = floats_to_base64(item.embedding)
    fields["data"] = msgspec.Raw(_encoder.encode(items))
    return _encoder.encode(fields)
