"""The replica gate in front of a real SGLang simulator, on loopback: only the edges' key opens it.

The simulator plays SGLang as the model tasks start it: on loopback, with a key of its own that
only the gate holds. Callers are the official `openai` SDK, httpx, and a running gateway reading
a document `fleet sync` wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import httpx
import openai
import pytest

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.running_gateway import Gateway
from tests.fleet.skypilot_double import SkyPilotDouble, cluster_payload
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.replica_gate import (
    FORBIDDEN,
    NOT_ANSWERING,
    UNAUTHORIZED,
    Gate,
    GateConfig,
    Network,
    listen,
    serve,
)
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.backends.fleet.sync import Syncer
from warmgate.backends.sim import SimCluster, SimConfig

EDGE_KEY = "sk-edge-canary-7720"
LOCAL_KEY = "sk-local-canary-1187"
# SGLang serves these without a key; behind the gate they need one.
OPEN_IN_SGLANG = ["/health_generate", "/ready", "/metrics", "/get_server_info", "/v1/models"]


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
async def sglang() -> AsyncIterator[SimCluster]:
    config = SimConfig(
        model="Qwen/Qwen3-32B",
        served_model_name="qwen3-32b",
        api_key=LOCAL_KEY,
        enable_metrics=True,
        time_scale=0.0,
    )
    async with SimCluster(config, host="127.0.0.1", port=0) as cluster:
        yield cluster


@contextlib.asynccontextmanager
async def gate_before(
    sglang: SimCluster,
    clock: Clock | None = None,
    allowed_sources: tuple[Network, ...] = (),
) -> AsyncIterator[tuple[Gate, str]]:
    config = GateConfig(
        key=EDGE_KEY,
        upstream_url=sglang.urls[0],
        upstream_key=LOCAL_KEY,
        allowed_sources=allowed_sources,
    )
    gate = Gate(config, clock=clock or Clock())
    sock = listen("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    serving = asyncio.create_task(serve(gate, sock))
    try:
        yield gate, f"http://{host}:{port}"
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.anyio
async def test_without_the_edges_key_nothing_reaches_sglang(sglang: SimCluster) -> None:
    async with gate_before(sglang) as (_, url), httpx.AsyncClient(base_url=url) as http:
        for path in OPEN_IN_SGLANG:
            for headers in ({}, bearer("sk-wrong"), bearer(LOCAL_KEY), {"Authorization": EDGE_KEY}):
                answer = await http.get(path, headers=headers)
                assert (answer.status_code, answer.content) == (401, UNAUTHORIZED), path
        chat = await http.post(
            "/v1/chat/completions",
            json={"model": "qwen3-32b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert (chat.status_code, chat.content) == (401, UNAUTHORIZED)
        assert (await http.get("/metrics", headers=bearer(EDGE_KEY))).status_code == 200
    assert sglang.replicas[0].telemetry.requests_received == 0


@pytest.mark.anyio
async def test_with_the_edges_key_the_openai_sdk_gets_sglangs_answers(sglang: SimCluster) -> None:
    async with gate_before(sglang) as (_, url):
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=EDGE_KEY, max_retries=0)
        async with client:
            models = await client.models.list()
            assert [m.id for m in models.data] == ["qwen3-32b"]
            reply = await client.chat.completions.create(
                model="qwen3-32b", messages=[{"role": "user", "content": "Say hi"}], max_tokens=5
            )
            assert reply.usage is not None
            assert 1 <= reply.usage.completion_tokens <= 5
            stream = await client.chat.completions.create(
                model="qwen3-32b",
                messages=[{"role": "user", "content": "Say hi"}],
                max_tokens=5,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            assert chunks[-1].usage is not None
            assert 1 <= chunks[-1].usage.completion_tokens <= 5
    # SGLang saw its own key on each (it answers 401 to any other).
    assert sglang.replicas[0].telemetry.requests_completed == 2


@pytest.mark.anyio
async def test_readiness_without_a_key_is_a_cached_yes_or_no_that_spares_sglang(
    sglang: SimCluster,
) -> None:
    clock = Clock()
    async with gate_before(sglang, clock) as (gate, url), httpx.AsyncClient(base_url=url) as http:
        answers = [await http.get("/health") for _ in range(5)]
        assert [(a.status_code, a.content) for a in answers] == [(200, b"")] * 5
        assert gate.health_checks == 1  # one generation in SGLang, not five
        await sglang.replicas[0].set_faults(unhealthy=True)
        assert (await http.get("/health")).status_code == 200  # still the cached answer
        clock.now_s += gate.config.health_cache_s
        assert (await http.get("/health")).status_code == 503
        assert gate.health_checks == 2
        assert (await http.head("/health")).status_code == 401  # only GET is a readiness probe


@pytest.mark.anyio
async def test_sglang_down_is_a_503_an_edge_retries_elsewhere_and_not_ready(
    sglang: SimCluster,
) -> None:
    clock = Clock()
    async with gate_before(sglang, clock) as (_, url), httpx.AsyncClient(base_url=url) as http:
        await sglang.close()
        answer = await http.post(
            "/v1/chat/completions",
            headers=bearer(EDGE_KEY),
            json={"model": "qwen3-32b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert (answer.status_code, answer.content) == (503, NOT_ANSWERING)
        assert (await http.get("/health")).status_code == 503


@pytest.mark.anyio
async def test_a_caller_leaving_mid_stream_aborts_the_request_in_sglang() -> None:
    config = SimConfig(
        model="Qwen/Qwen3-32B", served_model_name="qwen3-32b", api_key=LOCAL_KEY, seed=3
    )  # real pace: about 12 ms a token
    async with SimCluster(config, host="127.0.0.1", port=0) as slow:
        replica = slow.replicas[0]
        async with gate_before(slow) as (_, url), httpx.AsyncClient(base_url=url) as http:
            body = {
                "model": "qwen3-32b",
                "messages": [{"role": "user", "content": "Tell a long story"}],
                "max_tokens": 2000,
                "stream": True,
            }
            request = http.build_request(
                "POST", "/v1/chat/completions", headers=bearer(EDGE_KEY), json=body
            )
            response = await http.send(request, stream=True)
            assert response.status_code == 200
            first = await anext(response.aiter_bytes())
            assert first.startswith(b"data: ")
            await response.aclose()  # the caller goes away after its first token
            async with asyncio.timeout(10):
                await replica.scheduler.wait_until(lambda _: replica.telemetry.aborted >= 1)
        assert replica.telemetry.requests_completed == 0


@pytest.mark.anyio
async def test_callers_outside_the_allowed_sources_are_refused_but_readiness_answers(
    sglang: SimCluster,
) -> None:
    elsewhere = (ipaddress.ip_network("10.0.0.0/8"),)
    async with (
        gate_before(sglang, allowed_sources=elsewhere) as (_, url),
        httpx.AsyncClient(base_url=url) as http,
    ):
        answer = await http.get("/v1/models", headers=bearer(EDGE_KEY))
        assert (answer.status_code, answer.content) == (403, FORBIDDEN)
        assert (await http.get("/health")).status_code == 200
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    async with (
        gate_before(sglang, allowed_sources=loopback) as (_, url),
        httpx.AsyncClient(base_url=url) as http,
    ):
        assert (await http.get("/v1/models", headers=bearer(EDGE_KEY))).status_code == 200


def test_the_gate_never_runs_open() -> None:
    with pytest.raises(ValueError, match="never runs open"):
        Gate(GateConfig(key="", upstream_url="http://127.0.0.1:1", upstream_key=LOCAL_KEY))
    environ = {
        "SGLANG_API_KEY": EDGE_KEY,
        "SGLANG_LOCAL_KEY": LOCAL_KEY,
        "SGLANG_LOCAL_PORT": "30001",
        "ALLOWED_SOURCES": "203.0.113.0/24, 2001:db8::/32",
    }
    config = GateConfig.from_environ(environ)
    assert config.upstream_url == "http://127.0.0.1:30001"
    assert [str(n) for n in config.allowed_sources] == ["203.0.113.0/24", "2001:db8::/32"]


@pytest.mark.anyio
async def test_a_gateway_holding_the_edges_key_routes_through_the_gate(
    sky: ModuleType, tmp_path: Path, sglang: SimCluster
) -> None:
    async with gate_before(sglang) as (_, url):
        double = SkyPilotDouble(
            sky,
            clusters=[cluster_payload("wg-qwen3-32b-c1")],
            addresses={"wg-qwen3-32b-c1": url.removeprefix("http://")},
        )
        fleet = SkyPilot(double)
        lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
        document = tmp_path / "backends.json"
        sync = Syncer(fleet, lineup, document, "SGLANG_API_KEY", clock=lambda: datetime.now(UTC))
        sync.run_once()
        gateway = Gateway(document, tmp_path / "gateway", {"SGLANG_API_KEY": EDGE_KEY})
        async with gateway, gateway.client() as client:
            await gateway.reload()  # the gateway's own probe (/health_generate, keyed) passes
            assert gateway.routable_urls() == {url}
            reply = await client.chat.completions.create(
                model="qwen3-32b", messages=[{"role": "user", "content": "Say hi"}], max_tokens=3
            )
            assert reply.choices[0].message.content
    assert EDGE_KEY not in document.read_text()
    assert EDGE_KEY.encode() not in gateway.log.getvalue()
