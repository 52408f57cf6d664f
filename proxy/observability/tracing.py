"""W3C trace context: a request's `traceparent`/`tracestate` read, carried and passed upstream.

SGLang reads both headers, so a trace that enters the gateway continues in the backend. With
OpenTelemetry export off (the default) a request that came with a trace is passed through as
is: its trace id goes on the log line and the same headers go to the backend; a request
without one costs nothing. With export on (`proxy.observability.otel`, imported only then),
every request gets spans: the whole request, admission, routing, connect and first token, and
the backend gets the connect span as its parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# W3C: vendors must propagate at least 512 characters of tracestate and may drop a longer one.
MAX_TRACESTATE_CHARS = 512
_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class TraceContext(NamedTuple):
    """A parsed `traceparent` (version 00 fields) and its `tracestate`."""

    trace_id: str  # 32 lowercase hex digits
    parent_id: str  # 16 lowercase hex digits
    flags: str  # 2 hex digits; bit 0: sampled
    state: str | None = None

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.parent_id, self.flags)


def format_traceparent(trace_id: str, span_id: str, flags: str) -> str:
    return f"00-{trace_id}-{span_id}-{flags}"


def parse_trace_context(traceparent: str | None, tracestate: str | None) -> TraceContext | None:
    """The trace a request carries, or None when it carries none or an invalid one (the W3C
    rule: an invalid `traceparent` is ignored, and its `tracestate` with it). A version above
    00 is read for its version-00 fields, as the recommendation asks."""
    if traceparent is None:
        return None
    value = traceparent.strip()
    if len(value) < 55 or (len(value) > 55 and value[55] != "-"):
        return None
    parts = value[:55].split("-")
    if len(parts) != 4:
        return None
    version, trace_id, parent_id, flags = parts
    if (
        len(version) != 2
        or not _is_hex(version)
        or version == "ff"
        or (version == "00" and len(value) != 55)
        or len(trace_id) != 32
        or len(parent_id) != 16
        or len(flags) != 2
        or not _is_hex(trace_id + parent_id + flags)
        or trace_id == _ZERO_TRACE
        or parent_id == _ZERO_SPAN
    ):
        return None
    state = tracestate.strip() if tracestate is not None else None
    if not state or len(state) > MAX_TRACESTATE_CHARS:
        state = None
    return TraceContext(trace_id, parent_id, flags, state)


def _is_hex(text: str) -> bool:
    return set(text) <= _HEX


class Span(Protocol):
    """One timed step of a request."""

    def end(self, error: str | None = None) -> None: ...


class RequestTrace(Protocol):
    """The trace of one request, carried by its exchange from entry to accounting."""

    @property
    def trace_id(self) -> str: ...

    def span(self, name: str) -> Span:
        """A step started now (`admission`, `routing`, `connect`); ended by the caller."""
        ...

    def upstream_headers(self, connect: Span) -> Mapping[str, str]:
        """`traceparent` (and `tracestate`) for the request the `connect` step sends."""
        ...

    def answer_started(self) -> None:
        """The backend's answer head arrived: the wait for the first token begins."""
        ...

    def first_token(self) -> None:
        """The first token (or the whole answer) reached the client."""
        ...

    def finish(self, status: int, error_code: str | None) -> None:
        """The request is accounted: its trace ends."""
        ...


class Tracer(Protocol):
    """Starts the trace of a request, given the trace context it arrived with (if any)."""

    def start(self, incoming: TraceContext | None) -> RequestTrace: ...

    def close(self) -> None:
        """Export what is left and stop (the lifespan's end)."""
        ...


class _NoSpan:
    __slots__ = ()

    def end(self, error: str | None = None) -> None:
        return None


NO_SPAN = _NoSpan()


class PassedThrough:
    """A request's incoming trace, passed to the backend unchanged; no span is recorded."""

    __slots__ = ("_headers", "trace_id")

    def __init__(self, incoming: TraceContext) -> None:
        self.trace_id = incoming.trace_id
        headers = {TRACEPARENT: incoming.traceparent}
        if incoming.state is not None:
            headers[TRACESTATE] = incoming.state
        self._headers = headers

    def span(self, name: str) -> Span:
        return NO_SPAN

    def upstream_headers(self, connect: Span) -> Mapping[str, str]:
        return self._headers

    def answer_started(self) -> None:
        return None

    def first_token(self) -> None:
        return None

    def finish(self, status: int, error_code: str | None) -> None:
        return None
