"""`GET /openapi.json`: the gateway's OpenAPI 3.1 document, derived from what serves requests.

The relayed endpoints come from the endpoint table, and their request schemas from the very
Structs that validate the bodies, so the document and the validation cannot disagree; the
routes the gateway answers itself add their own entries here (models and operations) and in
`openapi_admin` (usage, admin, console, docs). A test holds the document to the app's route
table: every route served is documented, and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from warmgate.proxy.endpoints import ENDPOINTS, Body, Endpoint
from warmgate.proxy.errors import ErrorResponse
from warmgate.proxy.http.routes.models import ListModelsResponse, Model
from warmgate.proxy.http.routes.openapi_admin import SCHEMAS, SECURITY_SCHEMES, admin_paths
from warmgate.proxy.ids import new_request_id
from warmgate.proxy.media import EVENT_STREAM, JSON, MULTIPART_FORM
from warmgate.proxy.pipeline.replies import JsonResponse

OPENAPI_PATH = "/openapi.json"
_ERRORS = {
    "400": "Invalid request (`error.param` names the field), or a body of another media type",
    "401": "Missing or wrong API key",
    "404": "Unknown model, or unknown stored response",
    "413": "Request body too large",
    "429": "Rate limit or quota exceeded (with Retry-After)",
    "502": "The model backend failed",
    "503": "No healthy backend for the model, or the gateway is shutting down",
    "504": "The model backend timed out",
}
# The multipart form of an audio transcription, as OpenAI documents it.
_TRANSCRIPTION_FORM = {
    "type": "object",
    "required": ["file", "model"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "model": {"type": "string"},
        "language": {"type": "string"},
        "prompt": {"type": "string"},
        "response_format": {
            "type": "string",
            "enum": ["json", "text", "srt", "verbose_json", "vtt", "diarized_json"],
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "timestamp_granularities[]": {
            "type": "array",
            "items": {"type": "string", "enum": ["word", "segment"]},
        },
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: str) -> dict[str, Any]:
    content = {JSON: {"schema": _ref("ErrorResponse")}}
    return {status: {"description": _ERRORS[status], "content": content} for status in statuses}


def _openapi_path(path: str) -> str:
    """Litestar's `{name:type}` as OpenAPI's `{name}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    answer: dict[str, Any] = {
        JSON: {"schema": {"type": "object", "description": f"OpenAI `{endpoint.response_schema}`"}}
    }
    if endpoint.translate is not None:
        answer[EVENT_STREAM.split(";", 1)[0]] = {
            "schema": {"type": "string", "description": "server-sent events, as OpenAI sends"}
        }
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.summary,
        "tags": ["openai"],
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "OK", "content": answer},
            **_errors("400", "401", "404", "413", "429", "502", "503", "504"),
        },
    }
    params = re.findall(r"\{(\w+):\w+\}", endpoint.path)
    if params:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in params
        ]
    if endpoint.body is Body.JSON and endpoint.request_schema is not None:
        schema = _ref(endpoint.request_schema.__name__)
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
    elif endpoint.body is Body.FORM:
        form = {MULTIPART_FORM: {"schema": _TRANSCRIPTION_FORM}}
        operation["requestBody"] = {"required": True, "content": form}
    return operation


def openapi_document(endpoints: Sequence[Endpoint] = ENDPOINTS) -> dict[str, Any]:
    schemas = [e.request_schema for e in endpoints if e.request_schema is not None]
    _, components = msgspec.json.schema_components(
        [*schemas, ErrorResponse, ListModelsResponse, Model, *SCHEMAS],
        ref_template="#/components/schemas/{name}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(_openapi_path(endpoint.path), {})[endpoint.method.lower()] = _operation(
            endpoint
        )
    plain = {"description": "OK", "content": {JSON: {"schema": {"type": "object"}}}}
    paths["/v1/models"] = {
        "get": {
            "operationId": "list_models",
            "summary": "List the models this key may use",
            "tags": ["openai"],
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {JSON: {"schema": _ref("ListModelsResponse")}},
                },
                **_errors("401"),
            },
        }
    }
    paths["/v1/models/{model}"] = {
        "get": {
            "operationId": "retrieve_model",
            "summary": "Retrieve a model (the id may be percent-encoded: org%2Fname)",
            "tags": ["openai"],
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "OK", "content": {JSON: {"schema": _ref("Model")}}},
                **_errors("401", "404"),
            },
        }
    }
    ops = ["operations"]
    paths["/health"] = {"get": {"summary": "Liveness", "tags": ops, "responses": {"200": plain}}}
    paths["/ready"] = {
        "get": {
            "summary": "Readiness: a backend is healthy and no shutdown has begun",
            "tags": ops,
            "responses": {"200": plain, **_errors("503")},
        }
    }
    paths["/metrics"] = {
        "get": {"summary": "Prometheus metrics", "tags": ops, "responses": {"200": plain}}
    }
    paths.update(admin_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Warmgate", "version": "1", "description": "OpenAI-compatible gateway"},
        "components": {
            "schemas": components,
            "securitySchemes": SECURITY_SCHEMES,
        },
        "paths": paths,
    }


def openapi_routes(endpoints: Sequence[Endpoint] = ENDPOINTS) -> list[HTTPRouteHandler]:
    document = msgspec.json.encode(openapi_document(endpoints))

    @get(OPENAPI_PATH, name="openapi")
    async def openapi() -> ASGIApp:
        return JsonResponse(document, status=200, headers=[("x-request-id", new_request_id())])

    return [openapi]
