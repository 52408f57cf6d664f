"""The Litestar app: the routes, the hot lane in front of them, CORS, and the error handlers.

`create_app(settings)` builds the gateway's resources (`proxy.runtime.Runtime`) and the app that
serves them; the runtime's lifespan starts and stops them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, BinaryIO

from litestar import Litestar
from litestar.config.cors import CORSConfig

from warmgate.proxy.console import Console
from warmgate.proxy.endpoints import ENDPOINTS, Body, Endpoint
from warmgate.proxy.http.framework_errors import EXCEPTION_HANDLERS
from warmgate.proxy.http.lane import HotLane
from warmgate.proxy.http.routes.admin_access import admin_check, admin_guard, admin_router
from warmgate.proxy.http.routes.admin_backends import admin_backends_routes
from warmgate.proxy.http.routes.admin_keys import admin_keys_routes
from warmgate.proxy.http.routes.endpoints import MULTIPART_OVERHEAD_BYTES, endpoint_routes
from warmgate.proxy.http.routes.models import model_routes
from warmgate.proxy.http.routes.openapi import openapi_routes
from warmgate.proxy.http.routes.ops import ops_routes
from warmgate.proxy.http.routes.usage import admin_usage_routes, usage_routes
from warmgate.proxy.observability.edge import SINGLE, WorkerSeat
from warmgate.proxy.observability.logs import RequestLog, log_level
from warmgate.proxy.runtime import Runtime
from warmgate.proxy.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

# Headers the OpenAI SDKs send (browsers need each one allowed by name) and those they may read.
SDK_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Accept",
    "OpenAI-Organization",
    "OpenAI-Project",
    "OpenAI-Beta",
    "User-Agent",
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Async",
    "X-Stainless-Retry-Count",
    "X-Stainless-Read-Timeout",
    "X-Stainless-Timeout",
    "X-Stainless-Helper-Method",
    "X-Stainless-Poll-Helper",
    "X-Stainless-Custom-Poll-Interval",
]
EXPOSED_HEADERS = [
    "x-request-id",
    "openai-processing-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "retry-after",
    "x-warmgate-price-usd",
]
# The cyclic collector's generation thresholds while serving (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 20)


# After the drain timeout cut the upstream connections: how long their requests get to answer.
CUT_REQUESTS_END_S = 1.0


def _admin_key(settings: Settings, environ: Mapping[str, str] | None) -> str | None:
    name = settings.auth.admin_key_env
    return (os.environ if environ is None else environ).get(name) if name else None


def _metrics_key(settings: Settings, environ: Mapping[str, str] | None) -> str | None:
    """The key `/metrics` asks for, or None when it is open. A named variable that is not set
    stops the start (MetricsKeyMissingError): a typo must not leave the metrics open."""
    name = settings.server.metrics_key_env
    if name is None:
        return None
    value = (os.environ if environ is None else environ).get(name)
    if not value:
        raise MetricsKeyMissingError(
            f"environment variable {name} ([server] metrics_key_env) is not set"
        )
    return value


class MetricsKeyMissingError(ValueError):
    """`[server] metrics_key_env` names a variable the environment does not set."""


def create_app(
    settings: Settings,
    *,
    log_sink: BinaryIO | None = None,
    environ: Mapping[str, str] | None = None,
    on_started: Callable[[], None] | None = None,
    endpoints: Sequence[Endpoint] = ENDPOINTS,
    worker: WorkerSeat = SINGLE,
    span_exporter: SpanExporter | None = None,
) -> Litestar:
    """The gateway app; `on_started` runs once every resource is up (the CLI prints there).
    `endpoints` is the table of relayed endpoints (the whole OpenAI surface by default);
    `worker` places it among the workers of an edge; `span_exporter` replaces the OTLP
    exporter when `[tracing]` is on (tests record spans in memory)."""
    runtime = Runtime(
        settings,
        log=RequestLog(
            log_sink,
            enabled=settings.server.access_log,
            level=log_level(settings.server.log_level),
            shared_sink=worker.workers > 1,
            worker=worker.number if worker.workers > 1 else None,
        ),
        environ=os.environ if environ is None else environ,
        on_started=on_started,
        worker=worker,
        span_exporter=span_exporter,
    )
    cors = CORSConfig(
        allow_origins=list(settings.server.cors_allow_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=SDK_REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
    admin_key = _admin_key(settings, environ)
    # The console: its pages for anyone (they ask for the admin key), its report endpoints
    # behind the admin guard, which also admits a console session.
    console = Console(
        admin_key=admin_key,
        check_key=partial(admin_check, runtime.keys, admin_key),
        ledger=runtime.ledger,
        pool=runtime.pool,
        key_store=runtime.key_store,
        keys=runtime.keys,
    )
    # Each body kind's limit, the same on the hot lane and the Litestar routes.
    max_body_bytes = {
        Body.JSON: settings.server.max_body_bytes,
        Body.FORM: settings.server.max_audio_bytes + MULTIPART_OVERHEAD_BYTES,
        Body.NONE: 0,
    }
    app = Litestar(
        route_handlers=[
            *endpoint_routes(runtime.relay, endpoints, max_body_bytes=max_body_bytes),
            *model_routes(runtime.pool, runtime.keys),
            *ops_routes(runtime, metrics_key=_metrics_key(settings, environ)),
            *openapi_routes(endpoints),
            *usage_routes(runtime.keys, runtime.ledger),
            *console.routes(),
            admin_router(
                console.guard(admin_guard(runtime.keys, admin_key)),
                [
                    *admin_backends_routes(runtime.pool),
                    *admin_usage_routes(runtime.ledger),
                    *admin_keys_routes(
                        runtime.key_store,
                        runtime.key_refresher,
                        known_models=lambda: [entry.name for entry in runtime.pool.models()],
                    ),
                    *console.admin_routes(),
                ],
            ),
        ],
        lifespan=[runtime.lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=cors,
        openapi_config=None,
        logging_config=None,
        request_max_body_size=settings.server.max_body_bytes,
        debug=False,
    )
    app.state.runtime = runtime
    # What the server calls: the table's plain POST endpoints bypass Litestar's request
    # machinery, its entry included (proxy/http/lane.py); every other request goes to `app`.
    app.state.entry = HotLane(runtime.relay, app, endpoints, max_body_bytes=max_body_bytes)
    return app
