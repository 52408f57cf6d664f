"""`GET /v1/models` and `GET /v1/models/{model}`: the models a key may use.

Answered by the gateway itself from its catalog: no backend is asked. A model the key may not
use is as absent as one that does not exist.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from warmgate.proxy.errors import GatewayError, ModelNotFound
from warmgate.proxy.http.routes.endpoints import request_headers
from warmgate.proxy.ids import new_request_id
from warmgate.proxy.keys.ring import KeyRing
from warmgate.proxy.pipeline.replies import JsonResponse, error_response
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


def _json(body: msgspec.Struct) -> JsonResponse:
    return JsonResponse(
        _encoder.encode(body), status=200, headers=[("x-request-id", new_request_id())]
    )


def model_routes(pool: Pool, keys: KeyRing) -> list[HTTPRouteHandler]:
    created = int(time.time())

    @get("/v1/models", name="list_models")
    async def list_models(request: AnyRequest) -> ASGIApp:
        try:
            key = keys.authenticate(request_headers(request).authorization)
        except GatewayError as error:
            return error_response(error)
        models = [
            Model(id=entry.name, created=created, owned_by=OWNER)
            for entry in pool.models()
            if key.may_use(entry.name)
        ]
        return _json(ListModelsResponse(data=models))

    @get("/v1/models/{model_id:path}", name="retrieve_model")
    async def retrieve_model(request: AnyRequest) -> ASGIApp:
        # The SDKs percent-encode the id (`org%2Fname`); the path arrives decoded.
        name = str(request.path_params["model_id"]).removeprefix("/")
        try:
            key = keys.authenticate(request_headers(request).authorization)
            entry = pool.resolve(name)
            if not key.may_use(entry.name):
                raise ModelNotFound.named(name)
        except GatewayError as error:
            return error_response(error)
        return _json(Model(id=entry.name, created=created, owned_by=OWNER))

    return [list_models, retrieve_model]
