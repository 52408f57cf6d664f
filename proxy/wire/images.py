"""`CreateImageRequest` (`POST /v1/images/generations`) as a msgspec Struct, and its decode."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.wire.rejection import rejection, too_deep


class CreateImageRequest(msgspec.Struct, kw_only=True):
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=32000)]
    # Optional in the spec (OpenAI defaults to dall-e-2); the gateway needs it to route.
    model: str | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=10)] | None = None
    size: str | None = None
    quality: Literal["standard", "hd", "low", "medium", "high", "auto"] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    style: Literal["vivid", "natural"] | None = None
    stream: bool | None = None
    partial_images: Annotated[int, msgspec.Meta(ge=0, le=3)] | None = None
    user: str | None = None


_decoder = msgspec.json.Decoder(CreateImageRequest)


def decode_image_request(body: bytes) -> tuple[CreateImageRequest, str]:
    """Validate a `POST /v1/images/generations` body: (request, model)."""
    try:
        request = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise rejection(exc) from None
    except RecursionError:
        raise too_deep() from None
    if not request.model:
        raise InvalidRequest(
            "Missing required parameter: 'model'.",
            param="model",
            code="missing_required_parameter",
        )
    if request.stream:
        raise InvalidRequest(
            "Streaming image generation is not supported by this gateway's image backends.",
            param="stream",
            code="unsupported_value",
        )
    return request, request.model
