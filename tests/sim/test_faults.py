"""Injected faults, switched at run time over /_sim/faults or through the replica handle."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from warmgate.backends.sim import SimCluster, SimConfig

pytestmark = pytest.mark.anyio

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


async def set_faults(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await http.post("/_sim/faults", json=fields)
    assert response.status_code == 200, response.text
    faults: dict[str, Any] = response.json()
    return faults


async def test_refused_connections_are_really_refused_until_cleared(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=cluster.urls[0]) as pooled:
        assert (await pooled.get("/health")).status_code == 200  # a kept-alive connection
        await set_faults(http, refuse_connections=True)  # answered on the caller's connection
        with pytest.raises(httpx.TransportError):
            await pooled.get("/health")  # the pooled connection was reset, a new one refused
    async with httpx.AsyncClient(base_url=cluster.urls[0]) as fresh:
        with pytest.raises(httpx.ConnectError):
            await fresh.get("/health")
        await cluster.replicas[0].set_faults(refuse_connections=False)
        assert (await fresh.get("/health")).status_code == 200


async def test_fail_rate_one_answers_every_generation_with_the_chosen_status(
    http: httpx.AsyncClient,
) -> None:
    await set_faults(http, fail_rate=1.0, fail_status=503)
    failed = await http.post("/v1/chat/completions", json=CHAT)
    assert failed.status_code == 503
    assert failed.json()["object"] == "error"
    assert (await http.get("/health")).status_code == 200
    await set_faults(http, fail_rate=0.0)
    assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert (await http.get("/_sim/stats")).json()["faults_injected"] == 1


async def test_fault_settings_are_validated_and_reported(http: httpx.AsyncClient) -> None:
    assert (await http.post("/_sim/faults", json={"fail_status": 404})).status_code == 400
    assert (await http.post("/_sim/faults", json={"no_such_fault": True})).status_code == 400
    faults = (await http.get("/_sim/faults")).json()
    assert faults["fail_status"] == 500
    assert faults["cut_stream_after_tokens"] is None


async def test_a_hung_replica_sends_no_byte_until_the_fault_is_cleared(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    replica = cluster.replicas[0]
    await set_faults(http, hang_before_first_byte=True)
    statuses: list[int] = []

    async def call() -> None:
        statuses.append((await http.post("/v1/chat/completions", json=CHAT)).status_code)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        with anyio.fail_after(5):
            await replica.scheduler.wait_until(lambda _: replica.held == 1)
        assert statuses == []
        await replica.set_faults(hang_before_first_byte=False)
    assert statuses == [200]


async def test_a_cut_stream_breaks_the_connection_after_n_tokens(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    await set_faults(http, cut_stream_after_tokens=3)
    body = {**CHAT, "max_tokens": 50, "ignore_eos": True, "stream": True}
    raw = bytearray()

    async def read_all() -> None:
        async with http.stream("POST", "/v1/chat/completions", json=body) as reply:
            async for chunk in reply.aiter_raw():
                raw.extend(chunk)

    with pytest.raises(httpx.RemoteProtocolError):
        await read_all()
    received = [line for line in raw.decode().split("\n") if line]
    assert received[0].startswith("data: ")  # the role event and the tokens before the cut
    assert sum('"content":"' in line for line in received) >= 3
    assert "data: [DONE]" not in received
    assert cluster.replicas[0].scheduler.num_running == 0


async def test_slow_decode_multiplies_the_inter_token_latency(http: httpx.AsyncClient) -> None:
    body = {**CHAT, "max_tokens": 5, "ignore_eos": True}
    normal = (await http.post("/v1/chat/completions", json=body)).json()["id"]
    await set_faults(http, slow_decode_factor=3.0)
    slow = (await http.post("/v1/chat/completions", json=body)).json()["id"]
    records = {r["rid"]: r for r in (await http.get("/_sim/stats")).json()["recent_requests"]}
    assert records[slow]["itl_s"] == pytest.approx(3 * records[normal]["itl_s"])


async def test_never_ready_and_unhealthy_answer_503_on_the_probes(http: httpx.AsyncClient) -> None:
    await set_faults(http, never_ready=True)
    assert [(await http.get(p)).status_code for p in ("/health", "/ready", "/ping")] == [503] * 3
    await set_faults(http, never_ready=False, unhealthy=True)
    statuses = [(await http.get(p)).status_code for p in ("/health_generate", "/ready", "/ping")]
    assert statuses == [503, 200, 503]
    await set_faults(http, unhealthy=False)
    assert (await http.get("/health_generate")).status_code == 200


class TestStartup:
    @pytest.fixture
    def sim_config(self) -> SimConfig:
        return SimConfig(model="demo", time_scale=1.0, startup_s=3600.0)

    async def test_health_is_503_while_starting_but_models_already_answer(
        self, http: httpx.AsyncClient
    ) -> None:
        assert (await http.get("/health")).status_code == 503
        assert (await http.get("/ready")).status_code == 503
        assert (await http.get("/v1/models")).status_code == 200
        assert (await http.get("/model_info")).status_code == 200


async def test_draining_answers_503_on_health_but_still_serves_requests(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    with anyio.fail_after(5):
        await cluster.drain()
    assert (await http.get("/health")).status_code == 503
    assert (await http.get("/ready")).status_code == 503
    assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_a_stream_can_fail_in_band_after_n_tokens_on_a_200(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    await set_faults(http, error_stream_after_tokens=2)
    body = {
        **CHAT,
        "max_tokens": 50,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = await http.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200
    events = reply.text.strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    assert events[-3] == (
        'data: {"error":{"object":"error","message":"Internal server error: simulated fault '
        'during generation","type":"INTERNAL_SERVER_ERROR","param":null,"code":500}}'
    )
    assert '"usage":{' in events[-2]
    assert not any('"finish_reason":"length"' in event for event in events)
    assert cluster.replicas[0].scheduler.num_running == 0
    completion = await http.post(
        "/v1/completions",
        json={
            "model": "demo",
            "prompt": "hi",
            "max_tokens": 50,
            "ignore_eos": True,
            "stream": True,
        },
    )
    assert completion.text.endswith('"code":500}}\n\ndata: [DONE]\n\n')


class TestFaultsFromTheStart:
    @pytest.fixture
    def sim_config(self) -> SimConfig:
        return SimConfig(model="demo", time_scale=0.0, hang_before_first_byte=True)

    async def test_a_replica_started_hung_holds_requests_until_released(
        self, cluster: SimCluster, http: httpx.AsyncClient
    ) -> None:
        replica = cluster.replicas[0]
        statuses: list[int] = []

        async def call() -> None:
            statuses.append((await http.post("/v1/chat/completions", json=CHAT)).status_code)

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            with anyio.fail_after(5):
                await replica.scheduler.wait_until(lambda _: replica.held == 1)
            await set_faults(http, hang_before_first_byte=False)
        assert statuses == [200]
