"""Routes for the rest of the OpenAI surface: audio transcriptions, the Responses API, images.

Thin handlers: read two headers and the body bytes, hand them to `SurfaceRelay`, and return
its answer, a bare ASGI app that Litestar passes through.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from warmgate.proxy.http.routes.models import request_headers
from warmgate.proxy.pipeline.surface import SurfaceRelay
from warmgate.proxy.routing.bindings import ResponseBindings
from warmgate.proxy.wire.surface import decode_images, decode_responses, decode_transcriptions

if TYPE_CHECKING:
    from warmgate.proxy.http.app import Runtime

AnyRequest = Request[Any, Any, Any]
# Room for the form's own framing (boundaries, part headers, text fields) around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def surface_routes(
    runtime: Runtime, *, bindings: ResponseBindings | None = None
) -> list[HTTPRouteHandler]:
    """The handlers, sharing the runtime's keys, limits, pool, upstream client and ledger."""
    settings = runtime.settings
    relay = SurfaceRelay(
        keys=runtime.keys,
        limiter=runtime.limiter,
        pool=runtime.pool,
        upstream=runtime.upstream,
        ledger=runtime.ledger,
        log=runtime.log,
        metrics=runtime.metrics,
        max_attempts=settings.upstream.max_attempts,
        bindings=bindings or ResponseBindings(),
    )
    max_audio_bytes: int = settings.server.max_audio_bytes

    @post("/v1/responses", status_code=200, name="create_response")
    async def create_response(request: AnyRequest) -> ASGIApp:
        authorization, content_type = request_headers(request)
        body = await request.body()
        return await relay.handle(
            "responses",
            partial(decode_responses, body),
            authorization=authorization,
            content_type=content_type,
            body=body,
            receive=request.receive,
        )

    @get("/v1/responses/{response_id:str}", name="retrieve_response")
    async def retrieve_response(request: AnyRequest) -> ASGIApp:
        authorization = request_headers(request)[0]
        response_id = str(request.path_params["response_id"])
        return await relay.stored(response_id, authorization=authorization, cancel=False)

    @post("/v1/responses/{response_id:str}/cancel", status_code=200, name="cancel_response")
    async def cancel_response(request: AnyRequest) -> ASGIApp:
        authorization = request_headers(request)[0]
        response_id = str(request.path_params["response_id"])
        return await relay.stored(response_id, authorization=authorization, cancel=True)

    @post("/v1/images/generations", status_code=200, name="create_image")
    async def create_image(request: AnyRequest) -> ASGIApp:
        authorization, content_type = request_headers(request)
        body = await request.body()
        return await relay.handle(
            "images.generations",
            partial(decode_images, body),
            authorization=authorization,
            content_type=content_type,
            body=body,
            receive=request.receive,
        )

    @post(
        "/v1/audio/transcriptions",
        status_code=200,
        name="create_transcription",
        request_max_body_size=max_audio_bytes + MULTIPART_OVERHEAD_BYTES,
    )
    async def create_transcription(request: AnyRequest) -> ASGIApp:
        authorization, content_type = request_headers(request)
        # One buffer of our own for the whole form: validated in place and, where the model or
        # format must change, edited in place, so the upload is never held twice.
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
        return await relay.handle(
            "audio.transcriptions",
            partial(decode_transcriptions, body, content_type, max_file_bytes=max_audio_bytes),
            authorization=authorization,
            content_type=content_type,
            body=body,
            json_body=False,
            receive=request.receive,
        )

    return [create_response, retrieve_response, cancel_response, create_image, create_transcription]
