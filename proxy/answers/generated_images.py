"""An image backend's answer as OpenAI's `ImagesResponse`: data URLs or base64, nulls dropped."""

from __future__ import annotations

import base64

import msgspec


class Image(msgspec.Struct, kw_only=True, omit_defaults=True):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImageGenUsage(msgspec.Struct, kw_only=True):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: dict[str, int]


class _BackendImages(msgspec.Struct, kw_only=True):
    created: int
    data: list[Image]
    usage: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class ImagesResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    created: int
    data: list[Image]
    usage: ImageGenUsage | None = None


_backend_images = msgspec.json.Decoder(_BackendImages)
_usage = msgspec.json.Decoder(ImageGenUsage)
_encoder = msgspec.json.Encoder()


class ImagesAnswerError(ValueError):
    """The backend's answer is not an images response."""


_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"RIFF", "image/webp"))


def media_type_of(b64: str) -> str:
    """The image type from the first bytes of its base64 (PNG, JPEG or WebP)."""
    try:
        head = base64.b64decode(b64[:16], validate=False)
    except ValueError:
        return "application/octet-stream"
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    return "application/octet-stream"


def images_response(payload: bytes, response_format: str) -> bytes:
    """OpenAI's `ImagesResponse` from an image backend's base64 answer.

    Null fields (SGLang's `revised_prompt: null`, `file_path`, ...) are dropped, its chat-style
    usage is kept only when it has OpenAI's image-usage shape, and for `response_format: url`
    each image becomes a `data:` URL (a backend's own URLs are internal addresses).
    """
    try:
        answer = _backend_images.decode(payload)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ImagesAnswerError(str(exc)) from None
    usage: ImageGenUsage | None = None
    if bytes(answer.usage) != b"null":
        try:
            usage = _usage.decode(answer.usage)
        except (msgspec.DecodeError, RecursionError):
            usage = None
    images: list[Image] = []
    for item in answer.data:
        if item.b64_json is None:
            raise ImagesAnswerError("an image came back without b64_json")
        if response_format == "url":
            url = f"data:{media_type_of(item.b64_json)};base64,{item.b64_json}"
            images.append(Image(url=url, revised_prompt=item.revised_prompt))
        else:
            images.append(Image(b64_json=item.b64_json, revised_prompt=item.revised_prompt))
    return _encoder.encode(ImagesResponse(created=answer.created, data=images, usage=usage))
