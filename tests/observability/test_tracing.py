"""W3C trace context through the gateway: what reaches the backend, what the log line says, and
with OpenTelemetry export on, the spans one request leaves behind (in an in-memory exporter).

A recording hop stands between the gateway and the simulated replica
(`tests.support.recording_upstream`): it keeps the headers the backend received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.gateway import GatewayServer
from tests.support.recording_upstream import RecordingUpstream
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.proxy.settings import parse_settings

KEY = "wg-test-" + "t" * 40
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
MESSAGES: Any = [{"role": "user", "content": "Trace me"}]
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    sim = SimCluster(SimConfig(model="demo", time_scale=0.0), replicas=1).start_in_thread()
    recording = RecordingUpstream(sim.urls[0]).start_in_thread()
    yield recording
    recording.stop()
    sim.stop()


def serve(
    data_dir: Path, upstream: RecordingUpstream, exporter: InMemorySpanExporter | None = None
) -> GatewayServer:
    """The gateway in front of the recording hop; with `exporter`, tracing is on."""
    tracing = {"enabled": exporter is not None}
    settings = parse_settings(
        {
            "data_dir": str(data_dir),
            "health": {"interval_s": 3600, "probe_path": "/health"},
            "routing": {"load_poll_interval_s": 0},
            "tracing": tracing,
            "models": [{"name": "demo", "backends": [{"url": upstream.url}]}],
            "keys": [{"name": "tracer", "secret_env": "WG_TRACE_KEY"}],
        }
    )
    return GatewayServer(settings, environ={"WG_TRACE_KEY": KEY}, span_exporter=exporter).start()


@pytest.fixture
def plain(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[GatewayServer]:
    """Export off, the default."""
    server = serve(tmp_path, upstream)
    yield server
    server.stop()


def chat(gateway: GatewayServer, headers: dict[str, str], *, stream: bool = False) -> str:
    """One request; its request id."""
    with OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="demo", messages=MESSAGES, max_tokens=3, stream=stream, extra_headers=headers
        )
        parsed: Any = raw.parse()
        if stream:
            for _ in parsed:
                pass
        return str(raw.headers["x-request-id"])


def log_line(gateway: GatewayServer, request_id: str) -> dict[str, Any]:
    gateway.runtime.log.flush()
    for line in gateway.log_lines():
        record: dict[str, Any] = json.loads(line)
        if record.get("request_id") == request_id:
            return record
    raise AssertionError(f"no log line for {request_id}")


def test_a_traceparent_reaches_the_backend_with_the_same_trace_id_and_goes_on_the_log_line(
    plain: GatewayServer, upstream: RecordingUpstream
) -> None:
    before = len(upstream.headers_of(CHAT))
    for stream in (False, True):
        request_id = chat(
            plain, {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}, stream=stream
        )
        received = upstream.headers_of(CHAT)[-1]
        assert received["traceparent"] == TRACEPARENT
        assert received["tracestate"] == TRACESTATE
        assert log_line(plain, request_id)["trace_id"] == TRACE_ID
    assert len(upstream.headers_of(CHAT)) == before + 2


def test_without_a_valid_traceparent_nothing_is_invented_or_passed_on(
    plain: GatewayServer, upstream: RecordingUpstream
) -> None:
    untraced = chat(plain, {})
    assert "traceparent" not in upstream.headers_of(CHAT)[-1]
    assert log_line(plain, untraced)["trace_id"] is None
    all_zero = f"00-{'0' * 32}-{PARENT_ID}-01"
    invalid = chat(plain, {"traceparent": all_zero, "tracestate": TRACESTATE})
    received = upstream.headers_of(CHAT)[-1]
    assert "traceparent" not in received
    assert "tracestate" not in received
    assert log_line(plain, invalid)["trace_id"] is None


def test_with_export_on_one_request_records_its_spans_under_the_incoming_trace(
    tmp_path: Path, upstream: RecordingUpstream
) -> None:
    exporter = InMemorySpanExporter()
    gateway = serve(tmp_path, upstream, exporter)
    try:
        request_id = chat(
            gateway, {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}, stream=True
        )
        line = log_line(gateway, request_id)
        received = upstream.headers_of(CHAT)[-1]
    finally:
        gateway.stop()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"warmgate.request", "admission", "routing", "connect", "first_token"}
    root = spans["warmgate.request"]
    assert root.parent is not None
    assert f"{root.parent.span_id:016x}" == PARENT_ID
    for span in spans.values():
        assert span.context is not None
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        if span is not root:
            assert span.parent is not None
            assert span.parent.span_id == root.context.span_id
    assert root.attributes is not None
    assert root.attributes["http.response.status_code"] == 200
    # The backend continues the trace under the connect span.
    connect = spans["connect"].context
    assert connect is not None
    assert received["traceparent"] == f"00-{TRACE_ID}-{connect.span_id:016x}-01"
    assert received["tracestate"] == TRACESTATE
    assert line["trace_id"] == TRACE_ID
    # The spans follow the request: admission, routing, connect, then the first token.
    order = sorted(spans.values(), key=lambda span: span.start_time or 0)
    assert [span.name for span in order] == [
        "warmgate.request",
        "admission",
        "routing",
        "connect",
        "first_token",
    ]


def test_with_export_on_a_request_without_a_trace_starts_one_and_passes_it_on(
    tmp_path: Path, upstream: RecordingUpstream
) -> None:
    exporter = InMemorySpanExporter()
    gateway = serve(tmp_path, upstream, exporter)
    try:
        request_id = chat(gateway, {})
        line = log_line(gateway, request_id)
        received = upstream.headers_of(CHAT)[-1]
    finally:
        gateway.stop()
    root = next(s for s in exporter.get_finished_spans() if s.name == "warmgate.request")
    assert root.parent is None
    assert root.context is not None
    trace_id = f"{root.context.trace_id:032x}"
    assert line["trace_id"] == trace_id
    assert received["traceparent"].split("-")[1] == trace_id
