"""The aiohttp application of one replica: SGLang's routes, its API-key check, its 404 body."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from warmgate.backends.sim.errors import UNAUTHORIZED_BODY
from warmgate.backends.sim.network import first_byte_delay
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.routes import (
    admin,
    chat,
    completions,
    control,
    embeddings,
    health,
    info,
    metrics,
    models,
    native,
    surface,
)
from warmgate.backends.sim.routes.intake import JSON, REPLICA

# srt/utils/auth.py decide_request_auth: probes and scrapes never need the key. The simulator's
# own /_sim control routes are exempt too, so tests can flip faults on a keyed replica.
AUTH_EXEMPT_PREFIXES = ("/health", "/ready", "/metrics", "/_sim/")


def build_app(replica: Replica) -> web.Application:
    middlewares: list[Middleware] = []
    if replica.network_delay_s > 0:  # outermost: a refused key waits for the network too
        middlewares.append(first_byte_delay(replica.network_delay_s))
    if replica.config.api_key:
        middlewares.append(_api_key_guard(replica.config.api_key))
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024 * 1024)
    app[REPLICA] = replica
    add = app.router.add_route
    for path in ("/health", "/health_generate"):
        add("GET", path, health.health_generate)
    add("GET", "/ready", health.ready)
    add("GET", "/ping", health.ping)
    for path in ("/model_info", "/get_model_info"):
        add("GET", path, info.model_info)
    for path in ("/server_info", "/get_server_info"):
        add("GET", path, info.server_info)
    add("GET", "/v1/loads", info.loads)
    add("GET", "/v1/models", models.list_models)
    add("GET", "/v1/models/{model:.+}", models.retrieve_model)
    add("POST", "/v1/chat/completions", chat.chat_completions)
    add("POST", "/v1/completions", completions.completions)
    add("POST", "/v1/embeddings", embeddings.embeddings)
    for method in ("POST", "PUT"):
        add(method, "/generate", native.generate)
    for method in ("GET", "POST"):
        add(method, "/flush_cache", admin.flush_cache)
    add("POST", "/abort_request", admin.abort_request)
    add("POST", "/pause_generation", admin.pause_generation)
    add("POST", "/continue_generation", admin.continue_generation)
    if replica.config.enable_metrics:
        add("GET", "/metrics", metrics.metrics)
    add("GET", "/_sim/faults", control.get_faults)
    add("POST", "/_sim/faults", control.set_faults)
    add("GET", "/_sim/stats", control.stats)
    surface.install(app)  # transcriptions, Responses API, images (routes/surface.py)
    add("*", "/{tail:.*}", _not_found)
    return app


def _api_key_guard(api_key: str) -> Middleware:
    expected = api_key.encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" or request.path.startswith(AUTH_EXEMPT_PREFIXES):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected):
            return web.Response(body=UNAUTHORIZED_BODY, status=401, content_type=JSON)
        return await handler(request)

    return guard


async def _not_found(request: web.Request) -> web.Response:
    """FastAPI's answer for a path no route matches."""
    return web.Response(body=b'{"detail":"Not Found"}', status=404, content_type=JSON)
