"""Views of the requests beyond chat, completions and embeddings: Responses, images, audio.

`SurfaceView` is a `RequestView` that also says how the request reaches a backend (path,
method, content type) and what the answer needs on its way back (the client's
`response_format`, the transcription's language and temperature).
"""

from __future__ import annotations

from typing import cast

from warmgate.proxy.wire.audio import (
    MAX_AUDIO_BYTES,
    CreateTranscriptionRequest,
    decode_transcription,
)
from warmgate.proxy.wire.decoding import RequestView
from warmgate.proxy.wire.images import decode_image_request
from warmgate.proxy.wire.responses import decode_response_request
from warmgate.proxy.wire.rewriter import rewrite_request

JSON = "application/json"
RESPONSES_PATH = "/v1/responses"
IMAGES_PATH = "/v1/images/generations"
TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
# Images are always asked for as base64: a backend's own URLs are internal addresses.
IMAGE_UPSTREAM_FORMAT = "b64_json"


class SurfaceView(RequestView, frozen=True, kw_only=True):
    path: str
    method: str = "POST"
    content_type: str | None = JSON
    response_format: str | None = None
    previous_response_id: str | None = None
    language: str | None = None
    temperature: float | None = None

    def upstream_body(self, body: bytes | bytearray, served_model: str) -> bytes:
        request = self.request
        if isinstance(request, CreateTranscriptionRequest):
            # The form buffer, edited in place: the client sends bytes or the gateway's own
            # bytearray, and the forwarding client sends either as they are.
            return cast(bytes, request.upstream_body(body, served_model))
        if isinstance(body, bytearray):
            body = bytes(body)
        fields: dict[str, object] = {}
        if self.endpoint == "images.generations" and self.response_format != "b64_json":
            fields["response_format"] = IMAGE_UPSTREAM_FORMAT
        model = served_model if served_model != self.model else None
        if model is None and not fields:
            return body
        return rewrite_request(body, model=model, fields=fields)


def decode_responses(body: bytes) -> SurfaceView:
    request, prefix, estimate = decode_response_request(body)
    return SurfaceView(
        endpoint="responses",
        model=request.model,
        stream=request.stream is True,
        include_usage=False,
        n=1,
        prefix=prefix[:4096],
        prompt_tokens_estimate=estimate,
        encoding_format=None,
        request=request,
        path=RESPONSES_PATH,
        previous_response_id=request.previous_response_id,
    )


def decode_images(body: bytes) -> SurfaceView:
    request, model = decode_image_request(body)
    return SurfaceView(
        endpoint="images.generations",
        model=model,
        stream=False,
        include_usage=False,
        n=request.n or 1,
        prefix=request.prompt[:4096],
        prompt_tokens_estimate=len(request.prompt) // 4 + 1,
        encoding_format=None,
        request=request,
        path=IMAGES_PATH,
        response_format=request.response_format or "url",
    )


def decode_transcriptions(
    body: bytes | bytearray, content_type: str | None, *, max_file_bytes: int = MAX_AUDIO_BYTES
) -> SurfaceView:
    request = decode_transcription(body, content_type, max_file_bytes=max_file_bytes)
    return SurfaceView(
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
        path=TRANSCRIPTIONS_PATH,
        content_type=content_type,
        response_format=request.response_format,
        language=request.language,
        temperature=request.temperature,
    )
