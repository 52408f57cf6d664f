"""The gateway's resources, built from the settings and owned by one lifespan.

`Runtime` creates the key store and ring, the limiter, the backend pool with its health checks,
the response bindings, the ledger writer, the forwarding client and the relay; its lifespan
starts them in order and closes them in reverse order on shutdown, after the requests in flight
have drained.
"""

from __future__ import annotations

import gc
import importlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warmgate.proxy.keys import Key, KeyRefresher, KeyRing, OpenKeyRing, hash_secret, open_key_store
from warmgate.proxy.ledger import (
    open_ledger,
)
from warmgate.proxy.limits import build_limiter
from warmgate.proxy.limits.admission import Limiter
from warmgate.proxy.limits.health import limiter_families
from warmgate.proxy.observability.edge import SINGLE, EdgeMetrics, WorkerSeat
from warmgate.proxy.observability.logs import RequestLog
from warmgate.proxy.observability.metrics import Metrics, MetricSource
from warmgate.proxy.observability.process import ProcessCollector
from warmgate.proxy.observability.tracing import Tracer
from warmgate.proxy.pipeline.relay import Relay
from warmgate.proxy.routing.bindings import ResponseBindings
from warmgate.proxy.routing.catalog import declare
from warmgate.proxy.routing.pool import Pool
from warmgate.proxy.settings import Settings
from warmgate.proxy.store.bindings import open_binding_store
from warmgate.proxy.upstream.client import Upstream
from warmgate.proxy.wire.views import DecodeOptions

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

# The cyclic collector's generation thresholds while serving (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 20)
# After the drain timeout cut the upstream connections: how long their requests get to answer.
CUT_REQUESTS_END_S = 1.0


class MissingSecretError(ValueError):
    """A static key names an environment variable that is not set."""


def static_keys(settings: Settings, environ: Mapping[str, str]) -> list[tuple[str, Key]]:
    """The `[[keys]]` of the settings as (hash, Key), secrets read from the environment."""
    keys: list[tuple[str, Key]] = []
    for declared in settings.keys:
        secret = environ.get(declared.secret_env)
        if not secret:
            raise MissingSecretError(
                f"environment variable {declared.secret_env} (key {declared.name!r}) is not set"
            )
        key = Key(
            id=f"key_{declared.name}",
            name=declared.name,
            allowed_models=(
                frozenset(declared.allowed_models) if declared.allowed_models is not None else None
            ),
            rpm=declared.rpm,
            max_concurrency=declared.max_concurrency,
            quota=declared.quota,
            quota_period=declared.quota_period,
        )
        keys.append((hash_secret(secret), key))
    return keys


class Runtime:
    """Every resource the gateway owns, built from the settings; started by the lifespan."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: RequestLog,
        environ: Mapping[str, str],
        on_started: Callable[[], None] | None = None,
        worker: WorkerSeat = SINGLE,
        span_exporter: SpanExporter | None = None,
    ) -> None:
        self._on_started = on_started
        self._drain_deadline: float | None = None
        self.settings = settings
        self.log = log
        self.worker = worker
        self.metrics = Metrics(top_keys=settings.metrics.top_keys)
        self.metrics.add_collector(ProcessCollector())
        self.edge_metrics = EdgeMetrics(self.metrics, worker)
        self.tracer = build_tracer(settings, span_exporter)
        catalog, backends = declare(settings.models, default_policy=settings.routing.policy)
        self.pool = Pool(
            catalog,
            backends,
            routing=settings.routing,
            health=settings.health,
            environ=environ,
            metrics=self.metrics,
            events=log,
            eject_after_timeouts=settings.upstream.eject_after_timeouts,
            region=settings.server.region,
        )
        self.keys: KeyRing = KeyRing() if settings.auth.enabled else OpenKeyRing()
        self.key_store = open_key_store(
            settings.ledger_url,
            read_timeout_s=settings.ledger.read_timeout_s,
            write_timeout_s=settings.ledger.write_timeout_s,
        )
        self.key_refresher = KeyRefresher(
            self.key_store,
            self.keys,
            static_keys=static_keys(settings, environ),
            interval_s=settings.auth.refresh_interval_s,
        )
        self.ledger = open_ledger(
            settings.ledger_url,
            flush_interval_s=settings.ledger.flush_interval_ms / 1000.0,
            batch_rows=settings.ledger.batch_rows,
            enabled=settings.ledger.enabled,
            data_dir=Path(settings.data_dir).resolve(),
            spool=settings.ledger.spool,
            read_timeout_s=settings.ledger.read_timeout_s,
            write_timeout_s=settings.ledger.write_timeout_s,
            flush_observer=self.metrics.observe_ledger_flush,
        )
        self.metrics.add_collector(self.ledger.collect)
        # In-process quotas resume from the ledger's counts, so a restart hands out nothing twice.
        self.limiter: Limiter = build_limiter(
            enabled=settings.limits.enabled,
            redis_url=settings.limits.redis_url,
            quota_seed=self.ledger.admitted_since,
            default_rpm=settings.limits.default_rpm,
            local_share=settings.limits.local_share,
            store_timeout_s=settings.limits.store_timeout_s,
            worker_count=worker.workers,
            worker_index=worker.number,
            events=log,
        )
        self.metrics.add_collector(lambda: limiter_families(self.limiter.health()))
        for source in (self.limiter, self.ledger):
            if isinstance(source, MetricSource):
                self.metrics.add_collector(source.metric_families)
        self.upstream = Upstream(
            settings.upstream, max_answer_bytes=settings.server.max_answer_bytes
        )
        self.bindings = ResponseBindings(
            open_binding_store(
                settings.ledger_url,
                read_timeout_s=settings.bindings.read_timeout_s,
                write_timeout_s=settings.bindings.write_wait_s,
            )
            if settings.bindings.shared
            else None,
            capacity=settings.bindings.cache_entries,
            wait_s=settings.bindings.write_wait_s,
            retention_s=settings.bindings.retention_days * 86_400.0,
        )
        self.relay = Relay(
            keys=self.keys,
            limiter=self.limiter,
            pool=self.pool,
            bindings=self.bindings,
            upstream=self.upstream,
            ledger=self.ledger,
            log=log,
            metrics=self.metrics,
            tracer=self.tracer,
            upstream_settings=settings.upstream,
            models=settings.models,
            decode_options=DecodeOptions(
                prefix_chars=settings.routing.max_prefix_chars,
                max_file_bytes=settings.server.max_audio_bytes,
            ),
        )

    @property
    def draining(self) -> bool:
        return self._drain_deadline is not None

    async def drain(self) -> bool:
        """Refuse new requests (`/ready` and routing answer 503 `shutting_down`) and wait for
        those in flight, at most `drain_timeout_s` counted from the first call; True if none is
        left. Called on SIGTERM, then again by the lifespan's shutdown."""
        first = self._drain_deadline is None
        if self._drain_deadline is None:
            self._drain_deadline = time.monotonic() + self.settings.server.drain_timeout_s
            self.pool.drain()
            self.log.event("gateway_draining", in_flight=self.pool.in_flight)
        remaining = max(0.0, self._drain_deadline - time.monotonic())
        idle = await self.pool.wait_idle(remaining)
        if first and not idle:
            # Out of time: cut the upstream connections, so that each request still in flight
            # ends through the relay's own error path (an OpenAI error, in-band for a stream,
            # and its ledger row) rather than being cancelled by the server.
            self.log.warning("gateway_drain_timeout", in_flight=self.pool.in_flight)
            await self.upstream.close()
            idle = await self.pool.wait_idle(CUT_REQUESTS_END_S)
        return idle

    @asynccontextmanager
    async def lifespan(self, _: Any) -> AsyncIterator[None]:
        await self.log.start()
        await self.ledger.start()
        try:
            await self.key_store.start()
            await self.key_refresher.start()
            await self.bindings.start()
            await self.limiter.start()
            await self.upstream.start()
            await self.pool.start()
            await self.edge_metrics.start()
            self.log.event("gateway_started", models=[m.name for m in self.settings.models])
            if self._on_started is not None:
                self._on_started()
            # What exists now (modules, the app, its routes, the resources) lives as long as
            # the gateway: frozen out of the collector's sight, a full collection scans only
            # the requests' objects. Measured: full collections took ~6% of the CPU at
            # 1,000 req/s (60 ms each over ~100k objects), ~0.2% frozen. A request allocates
            # hundreds of container objects, nearly all freed by reference counting; at the
            # default threshold the young generation was still collected every other request,
            # 0.1 ms of collector time per request, with GC_THRESHOLDS 0.02 ms.
            gc.freeze()
            thresholds = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
            try:
                yield
            finally:
                gc.set_threshold(*thresholds)
                gc.unfreeze()
                await self.drain()
                await self.edge_metrics.close()
                await self.pool.close()
                await self.upstream.close()
                await self.limiter.close()
                await self.bindings.close()
                await self.key_refresher.close()
                await self.key_store.close()
        finally:
            await self.ledger.close()
            if self.tracer is not None:
                self.tracer.close()
            self.log.event("gateway_stopped")
            await self.log.close()


def build_tracer(settings: Settings, exporter: SpanExporter | None = None) -> Tracer | None:
    """The span exporter `[tracing]` asks for, or None (trace context is still passed on).
    OpenTelemetry is imported here and only when tracing is on: off, it costs nothing."""
    tracing = settings.tracing
    if not tracing.enabled:
        return None
    try:
        otel: Any = importlib.import_module("warmgate.proxy.observability.otel")
    except ImportError as exc:
        raise ValueError(
            "[tracing] enabled needs OpenTelemetry: pip install 'warmgate[otel]'"
        ) from exc
    tracer: Tracer = otel.ExportingTracer(
        endpoint=tracing.endpoint,
        service_name=tracing.service_name,
        sample_ratio=tracing.sample_ratio,
        exporter=exporter,
    )
    return tracer
