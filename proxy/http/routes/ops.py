"""Operations routes: liveness, readiness, Prometheus metrics and the gateway's OpenAPI schema.

None of them needs a key; none of them reveals one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from warmgate.proxy.errors import ErrorResponse, GatewayError, NoHealthyBackend, ShuttingDown
from warmgate.proxy.http.routes.models import ListModelsResponse, Model
from warmgate.proxy.pipeline.exchange import new_request_id
from warmgate.proxy.pipeline.relay import JSON
from warmgate.proxy.wire.chat import CreateChatCompletionRequest
from warmgate.proxy.wire.completions import CreateCompletionRequest
from warmgate.proxy.wire.embeddings import CreateEmbeddingRequest

if TYPE_CHECKING:
    from warmgate.proxy.http.app import Runtime

OPENAPI_PATH = "/openapi.json"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors() -> dict[str, Any]:
    content = {JSON: {"schema": _ref("ErrorResponse")}}
    return {
        status: {"description": text, "content": content}
        for status, text in [
            ("400", "Invalid request: `error.param` names the field"),
            ("401", "Missing or wrong API key"),
            ("404", "Unknown model"),
            ("413", "Request body too large"),
            ("429", "Rate limit or quota exceeded (with Retry-After)"),
            ("502", "The model backend failed"),
            ("503", "No healthy backend for the model"),
            ("504", "The model backend timed out"),
        ]
    }


def _generation(summary: str, request: str, response: str, streams: bool) -> dict[str, Any]:
    content: dict[str, Any] = {
        JSON: {"schema": {"type": "object", "description": f"OpenAI `{response}`"}}
    }
    if streams:
        content["text/event-stream"] = {
            "schema": {"type": "string", "description": "`data:` events, then `data: [DONE]`"}
        }
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref(request)}}},
            "responses": {"200": {"description": "OK", "content": content}, **_errors()},
        }
    }


def openapi_document() -> dict[str, Any]:
    """The gateway's OpenAPI 3.1 document; request schemas come from the Structs that
    validate requests, so the document and the validation cannot disagree."""
    _, components = msgspec.json.schema_components(
        [
            CreateChatCompletionRequest,
            CreateCompletionRequest,
            CreateEmbeddingRequest,
            ErrorResponse,
            ListModelsResponse,
            Model,
        ],
        ref_template="#/components/schemas/{name}",
    )
    plain = {"description": "OK", "content": {JSON: {"schema": {"type": "object"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Warmgate", "version": "1", "description": "OpenAI-compatible gateway"},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/chat/completions": _generation(
                "Create a chat completion",
                "CreateChatCompletionRequest",
                "CreateChatCompletionResponse",
                streams=True,
            ),
            "/v1/completions": _generation(
                "Create a completion",
                "CreateCompletionRequest",
                "CreateCompletionResponse",
                streams=True,
            ),
            "/v1/embeddings": _generation(
                "Create embeddings",
                "CreateEmbeddingRequest",
                "CreateEmbeddingResponse",
                streams=False,
            ),
            "/v1/models": {
                "get": {
                    "summary": "List models with a healthy backend",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {JSON: {"schema": _ref("ListModelsResponse")}},
                        },
                        "401": _errors()["401"],
                    },
                }
            },
            "/v1/models/{model}": {
                "get": {
                    "summary": "Retrieve a model (the id may be percent-encoded: org%2Fname)",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "model",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "OK", "content": {JSON: {"schema": _ref("Model")}}},
                        "401": _errors()["401"],
                        "404": _errors()["404"],
                    },
                }
            },
            "/health": {"get": {"summary": "Liveness", "responses": {"200": plain}}},
            "/ready": {
                "get": {
                    "summary": "Readiness: a backend is healthy and no shutdown has begun",
                    "responses": {"200": plain, "503": _errors()["503"]},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": plain}}},
        },
    }


def ops_routes(runtime: Runtime) -> list[HTTPRouteHandler]:
    schema = msgspec.json.encode(openapi_document())
    ok = msgspec.json.encode({"status": "ok"})
    ready_body = msgspec.json.encode({"status": "ready"})

    def _plain(body: bytes, status: int = 200, media_type: str = JSON) -> Response[bytes]:
        return Response(
            body,
            status_code=status,
            media_type=media_type,
            headers={"x-request-id": new_request_id("ops")},
        )

    @get("/health", name="health")
    async def health() -> Response[bytes]:
        return _plain(ok)

    @get("/ready", name="ready")
    async def ready() -> Response[bytes]:
        if runtime.draining:
            error: GatewayError = ShuttingDown("The gateway is shutting down.")
        elif runtime.pool.ready():
            return _plain(ready_body)
        else:
            error = NoHealthyBackend("No backend is healthy.")
        return _plain(error.to_json(), status=error.status)

    @get("/metrics", name="metrics")
    async def metrics() -> Response[bytes]:
        return _plain(runtime.metrics.render().encode(), media_type=PROMETHEUS)

    @get(OPENAPI_PATH, name="openapi")
    async def openapi() -> Response[bytes]:
        return _plain(schema)

    return [health, ready, metrics, openapi]
