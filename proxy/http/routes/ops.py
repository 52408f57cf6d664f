"""Operations routes: liveness, readiness and Prometheus metrics (the whole edge's, merged
over its workers).

Liveness and readiness need no key; `/metrics` (which names models and backend URLs) asks for
the metrics key when `[server] metrics_key_env` names one (`Authorization: Bearer <key>`, as
Prometheus's `authorization` scrape setting sends it). None of them reveals a key.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from warmgate.proxy.errors import GatewayError, InvalidApiKey, NoHealthyBackend, ShuttingDown
from warmgate.proxy.http.incoming import read_head
from warmgate.proxy.ids import new_request_id
from warmgate.proxy.media import JSON, PROMETHEUS
from warmgate.proxy.pipeline.replies import JsonResponse, error_response

if TYPE_CHECKING:
    from warmgate.proxy.runtime import Runtime


def _plain(body: bytes, media_type: str = JSON) -> JsonResponse:
    return JsonResponse(
        body, status=200, headers=[("x-request-id", new_request_id())], content_type=media_type
    )


def metrics_authorized(authorization: str | None, metrics_key: str) -> bool:
    """A constant-time check of `Authorization: Bearer <metrics key>`."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), metrics_key.encode())


def ops_routes(runtime: Runtime, *, metrics_key: str | None = None) -> list[HTTPRouteHandler]:
    """The routes; with `metrics_key`, `/metrics` answers 401 to any other bearer."""
    ok = msgspec.json.encode({"status": "ok"})
    ready_body = msgspec.json.encode({"status": "ready"})

    @get("/health", name="health")
    async def health() -> ASGIApp:
        return _plain(ok)

    @get("/ready", name="ready")
    async def ready() -> ASGIApp:
        if runtime.draining:
            error: GatewayError = ShuttingDown("The gateway is shutting down.")
        elif runtime.pool.ready():
            return _plain(ready_body)
        else:
            error = NoHealthyBackend("No backend is healthy.")
        return error_response(error)

    @get("/metrics", name="metrics")
    async def metrics(request: Request[Any, Any, Any]) -> ASGIApp:
        if metrics_key is not None and not metrics_authorized(
            read_head(request.scope["headers"]).authorization, metrics_key
        ):
            return error_response(InvalidApiKey("This endpoint needs the metrics key."))
        text = await runtime.edge_metrics.render()
        return _plain(text.encode(), media_type=PROMETHEUS)

    return [health, ready, metrics]
