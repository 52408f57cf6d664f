"""The OpenAI routes: chat completions, completions, embeddings, and the model list.

Handlers read only what the pipeline needs from the raw request (two headers and the body
bytes, never a parsed JSON dict) and hand it to `Relay.forward`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from warmgate.proxy.errors import GatewayError, ModelNotFound
from warmgate.proxy.keys.ring import KeyRing
from warmgate.proxy.pipeline.exchange import new_request_id
from warmgate.proxy.pipeline.relay import JSON, Relay
from warmgate.proxy.routing.pool import Pool

OWNER = "warmgate"

AnyRequest = Request[Any, Any, Any]


class Model(msgspec.Struct):
    id: str
    created: int
    owned_by: str
    object: str = "model"


class ListModelsResponse(msgspec.Struct):
    data: list[Model]
    object: str = "list"


_encoder = msgspec.json.Encoder()


def request_headers(request: AnyRequest) -> tuple[str | None, str | None]:
    """(Authorization, Content-Type) straight from the ASGI scope, without a header map."""
    authorization = content_type = None
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
    return authorization, content_type


def _forwarder(relay: Relay, endpoint: str) -> Callable[[AnyRequest], Coroutine[Any, Any, ASGIApp]]:
    async def forward(request: AnyRequest) -> ASGIApp:
        """Returns the relay's answer as a bare ASGI app, which Litestar passes through."""
        authorization, content_type = request_headers(request)
        return await relay.forward(
            endpoint,
            authorization=authorization,
            content_type=content_type,
            body=await request.body(),
            receive=request.receive,
        )

    return forward


def _error(error: GatewayError) -> Response[bytes]:
    return Response(
        error.to_json(),
        status_code=error.status,
        media_type=JSON,
        headers={"x-request-id": new_request_id("models"), **error.headers},
    )


def _json(body: msgspec.Struct) -> Response[bytes]:
    return Response(
        _encoder.encode(body),
        media_type=JSON,
        headers={"x-request-id": new_request_id("models")},
    )


def openai_routes(relay: Relay, pool: Pool, keys: KeyRing) -> list[HTTPRouteHandler]:
    created = int(time.time())

    chat = post("/v1/chat/completions", status_code=200, name="chat_completions")(
        _forwarder(relay, "chat.completions")
    )
    completions = post("/v1/completions", status_code=200, name="completions")(
        _forwarder(relay, "completions")
    )
    embeddings = post("/v1/embeddings", status_code=200, name="embeddings")(
        _forwarder(relay, "embeddings")
    )

    @get("/v1/models", name="list_models")
    async def list_models(request: AnyRequest) -> Response[bytes]:
        try:
            key = keys.authenticate(request_headers(request)[0])
        except GatewayError as error:
            return _error(error)
        models = [
            Model(id=entry.name, created=created, owned_by=OWNER)
            for entry in pool.models()
            if key.may_use(entry.name)
        ]
        return _json(ListModelsResponse(data=models))

    @get("/v1/models/{model_id:path}", name="retrieve_model")
    async def retrieve_model(request: AnyRequest) -> Response[bytes]:
        # The SDKs percent-encode the id (`org%2Fname`); the path arrives decoded.
        name = str(request.path_params["model_id"]).removeprefix("/")
        try:
            key = keys.authenticate(request_headers(request)[0])
            entry = pool.resolve(name)
            if not key.may_use(entry.name):
                raise ModelNotFound(f"The model '{name}' does not exist", param="model")
        except GatewayError as error:
            return _error(error)
        return _json(Model(id=entry.name, created=created, owned_by=OWNER))

    return [chat, completions, embeddings, list_models, retrieve_model]
