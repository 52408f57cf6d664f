"""OpenTelemetry export of the gateway's spans (the optional `otel` extra), imported only when
`[tracing] enabled` is on.

Each request is one trace (or continues the trace it arrived with): a SERVER span
`warmgate.request` for the whole request, and under it `admission`, `routing`, `connect`
(a CLIENT span, the backend's parent: its id goes upstream in `traceparent`) and
`first_token` (from the backend's answer head to the first token sent to the client). Spans
are started with an explicit parent, never through OpenTelemetry's global context or global
provider: the provider belongs to the runtime, which shuts it down (exporting what is left).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from warmgate.proxy.observability.tracing import (
    TRACEPARENT,
    TRACESTATE,
    RequestTrace,
    Span,
    TraceContext,
    format_traceparent,
)

INSTRUMENTATION = "warmgate"


class _OtelSpan:
    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def end(self, error: str | None = None) -> None:
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


class ExportedTrace:
    """One request's spans, all children of its `warmgate.request` span."""

    __slots__ = ("_first_token", "_parent", "_root", "_tracer", "trace_id")

    def __init__(self, tracer: trace.Tracer, parent: Context | None) -> None:
        self._tracer = tracer
        self._root = tracer.start_span("warmgate.request", context=parent, kind=SpanKind.SERVER)
        self._parent = trace.set_span_in_context(self._root)
        self.trace_id = f"{self._root.get_span_context().trace_id:032x}"
        self._first_token: trace.Span | None = None

    def span(self, name: str) -> Span:
        kind = SpanKind.CLIENT if name == "connect" else SpanKind.INTERNAL
        return _OtelSpan(self._tracer.start_span(name, context=self._parent, kind=kind))

    def upstream_headers(self, connect: Span) -> Mapping[str, str]:
        source = connect.span if isinstance(connect, _OtelSpan) else self._root
        context = source.get_span_context()
        headers = {
            TRACEPARENT: format_traceparent(
                f"{context.trace_id:032x}", f"{context.span_id:016x}", f"{context.trace_flags:02x}"
            )
        }
        state = context.trace_state.to_header()
        if state:
            headers[TRACESTATE] = state
        return headers

    def answer_started(self) -> None:
        if self._first_token is None:
            self._first_token = self._tracer.start_span("first_token", context=self._parent)

    def first_token(self) -> None:
        waiting, self._first_token = self._first_token, None
        if waiting is not None:
            waiting.end()

    def finish(self, status: int, error_code: str | None) -> None:
        self.first_token()  # a request that ended before its first token
        root = self._root
        root.set_attribute("http.response.status_code", status)
        if error_code is not None:
            root.set_attribute("error.type", error_code)
        if status >= 500:
            root.set_status(Status(StatusCode.ERROR, error_code or str(status)))
        root.end()


class ExportingTracer:
    """Spans for every request, handed to `exporter` (OTLP over HTTP unless one is given:
    tests give an in-memory one, exported at once)."""

    def __init__(
        self,
        *,
        endpoint: str,
        service_name: str,
        sample_ratio: float,
        exporter: SpanExporter | None = None,
    ) -> None:
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}),
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        )
        if exporter is None:
            self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint)))
        else:
            self._provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer(INSTRUMENTATION)

    def start(self, incoming: TraceContext | None) -> RequestTrace:
        parent = None if incoming is None else _remote_parent(incoming)
        return ExportedTrace(self._tracer, parent)

    def close(self) -> None:
        self._provider.shutdown()


def _remote_parent(incoming: TraceContext) -> Context:
    state = TraceState.from_header([incoming.state]) if incoming.state is not None else TraceState()
    remote = SpanContext(
        trace_id=int(incoming.trace_id, 16),
        span_id=int(incoming.parent_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(incoming.flags, 16)),
        trace_state=state,
    )
    return trace.set_span_in_context(NonRecordingSpan(remote))
