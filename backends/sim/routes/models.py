"""GET /v1/models and /v1/models/{model}, as http_server.available_models / retrieve_model."""

from __future__ import annotations

import time

from aiohttp import web

from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.wire import encode


def _card(name: str, context_length: int) -> dict[str, object]:
    return {
        "id": name,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "sglang",
        "root": name,
        "parent": None,
        "max_model_len": context_length,
    }


async def list_models(request: web.Request) -> web.Response:
    config = intake.replica_of(request).config
    body = {"object": "list", "data": [_card(config.served_name, config.context_length)]}
    return intake.json_response(encode(body))


async def retrieve_model(request: web.Request) -> web.Response:
    config = intake.replica_of(request).config
    model = request.match_info["model"]
    if model != config.served_name:
        error = {
            "message": f"The model '{model}' does not exist",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
        return intake.json_response(encode({"error": error}), 404)
    return intake.json_response(encode(_card(model, config.context_length)))
