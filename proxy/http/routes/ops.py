"""Operations routes: liveness, readiness and Prometheus metrics (the whole edge's, merged
over its workers).

None of them needs a key; none of them reveals one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp

from warmgate.proxy.errors import GatewayError, NoHealthyBackend, ShuttingDown
from warmgate.proxy.ids import new_request_id
from warmgate.proxy.media import JSON, PROMETHEUS
from warmgate.proxy.pipeline.replies import JsonResponse, error_response

if TYPE_CHECKING:
    from warmgate.proxy.runtime import Runtime


def _plain(body: bytes, media_type: str = JSON) -> JsonResponse:
    return JsonResponse(
        body, status=200, headers=[("x-request-id", new_request_id())], content_type=media_type
    )


def ops_routes(runtime: Runtime) -> list[HTTPRouteHandler]:
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
    async def metrics() -> ASGIApp:
        text = await runtime.edge_metrics.render()
        return _plain(text.encode(), media_type=PROMETHEUS)

    return [health, ready, metrics]
