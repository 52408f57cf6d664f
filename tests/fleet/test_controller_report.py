"""Edges report their requests to SkyServe controllers the way SkyServe's load balancer does.

The controller is a real HTTP server on loopback that records what it receives and answers like
SkyServe 0.14.1's `/controller/load_balancer_sync`; where it matters, the timestamps go into
SkyPilot's own autoscaler class (imported from the installed skypilot), which is what the real
controller does with them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.running_gateway import Gateway
from warmgate.backends.fleet.document import FleetBackend, FleetDocument, write_document
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.proxy.routing.controller_report import SYNC_PATH, ControllerReport

READY_URL = "http://203.0.113.3:30000"


@dataclass
class ControllerDouble:
    """SkyServe's controller endpoint: records each report and hands it to `collect`."""

    collect: Callable[[dict[str, Any]], None] | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def load_balancer_sync(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if self.collect is not None:
            self.collect(body.get("request_aggregator", {}))
        self.arrived.set()
        return web.json_response({"replica_info": {READY_URL: {"gpu_type": "H100"}}})

    def timestamps(self) -> list[float]:
        return [t for body in self.received for t in body["request_aggregator"]["timestamps"]]


@pytest.fixture
async def controller() -> AsyncIterator[ControllerDouble]:
    double = ControllerDouble()
    app = web.Application()
    app.router.add_post(SYNC_PATH, double.load_balancer_sync)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    double.url = f"http://127.0.0.1:{port}"
    try:
        yield double
    finally:
        await runner.cleanup()


def closed_port_url() -> str:
    import socket  # noqa: PLC0415 - only this helper needs it

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.anyio
async def test_a_report_carries_every_request_timestamp_in_skyserves_shape(
    controller: ControllerDouble,
) -> None:
    report = ControllerReport({"wg-qwen3-32b-us-east-1": controller.url}, clock=lambda: 1000.0)
    for second in (997.5, 998.0, 999.25):
        report.record("wg-qwen3-32b-us-east-1", second)
    report.record("wg-qwen3-32b-us-east-1")  # the clock's time
    report.record("wg-mistral-7b-instruct-c1")  # a plain cluster: no controller to tell
    try:
        assert await report.report_once() == {"wg-qwen3-32b-us-east-1": True}
    finally:
        await report.close()
    assert controller.received == [
        {"request_aggregator": {"timestamps": [997.5, 998.0, 999.25, 1000.0]}}
    ]
    assert report.pending("wg-qwen3-32b-us-east-1") == 0
    assert report.ready_urls("wg-qwen3-32b-us-east-1") == (READY_URL,)


@pytest.mark.anyio
async def test_an_unreachable_controller_gets_the_requests_later_within_the_window(
    controller: ControllerDouble,
) -> None:
    now = [1000.0]
    service = "wg-qwen3-32b"
    report = ControllerReport({service: closed_port_url()}, clock=lambda: now[0])
    try:
        report.record(service, 930.0)  # older than the autoscaler's 60 s window by the retry
        report.record(service, 990.0)
        assert await report.report_once() == {service: False}
        assert report.pending(service) == 1  # 930 is past what the autoscaler would count
        report.record(service, 1001.0)
        report.set_controllers({service: controller.url})
        now[0] = 1010.0
        assert await report.report_once() == {service: True}
    finally:
        await report.close()
    assert controller.timestamps() == [990.0, 1001.0]


@pytest.mark.anyio
async def test_the_loop_reports_on_its_interval_and_close_sends_what_is_left(
    controller: ControllerDouble,
) -> None:
    report = ControllerReport({"wg-qwen3-32b": controller.url}, interval_s=0.01)
    report.start()
    try:
        report.record("wg-qwen3-32b", 1.0)
        await asyncio.wait_for(controller.arrived.wait(), timeout=10)
        report.record("wg-qwen3-32b", 2.0)
    finally:
        await report.close()
    assert controller.timestamps() == [1.0, 2.0]


@pytest.mark.anyio
async def test_skypilots_autoscaler_sizes_the_service_for_the_qps_two_edges_offer(
    sky: ModuleType, controller: ControllerDouble
) -> None:
    from sky.serve import autoscalers  # noqa: PLC0415 - SkyPilot is imported by the fixture

    spec = sky.serve.SkyServiceSpec.from_yaml_config(
        yaml.safe_load((MODELS_DIR / "qwen3-32b.yaml").read_text())["service"]
    )
    autoscaler = autoscalers.Autoscaler.from_spec("wg-qwen3-32b", spec)
    assert isinstance(autoscaler, autoscalers.RequestRateAutoscaler)
    controller.collect = autoscaler.collect_request_information

    # 10 requests a second for 60 s, 6 through one edge and 4 through the other. The
    # autoscaler keeps what arrived in its last 60 s by its own wall clock, so the traffic is
    # placed around now: what it receives is 60 s of load however long the test takes.
    start = time.time() - 30
    offered_qps = {"edge-a": 6, "edge-b": 4}
    edges = {name: ControllerReport({"wg-qwen3-32b": controller.url}) for name in offered_qps}
    try:
        for second in range(60):
            for name, qps in offered_qps.items():
                for i in range(qps):
                    edges[name].record("wg-qwen3-32b", start + second + i / qps)
        for report in edges.values():
            assert await report.report_once() == {"wg-qwen3-32b": True}
    finally:
        for report in edges.values():
            await report.close()

    assert len(controller.timestamps()) == 600
    # SkyServe decides every 20 s and scales up once the higher target held for its upscale
    # delay (hysteresis): that many decision rounds, with no replica launched yet.
    for _ in range(autoscaler.scale_up_threshold):
        decisions = autoscaler.generate_scaling_decisions([], active_versions=[1])
    total_qps = sum(offered_qps.values())
    expected = min(spec.max_replicas, math.ceil(total_qps / spec.target_qps_per_replica))
    assert expected == 3
    assert autoscaler.target_num_replicas == expected
    scale_ups = [
        d for d in decisions if d.operator == autoscalers.AutoscalerDecisionOperator.SCALE_UP
    ]
    assert len(scale_ups) == expected


@pytest.mark.anyio
async def test_a_running_edge_reports_each_request_to_its_services_controller(
    controller: ControllerDouble, tmp_path: Path
) -> None:
    """The document `fleet sync` writes names each replica's service and the service's
    controller; the gateway records every request it sends there and, on its way out, posts
    what its last round has not yet sent. A plain cluster's replica is not reported."""
    service = "wg-qwen3-32b-us-east-1"
    config = SimConfig(model="Qwen/Qwen3-32B", served_model_name="qwen3-32b", time_scale=0.0)
    async with SimCluster(config, replicas=2, host="127.0.0.1", port=0) as replicas:
        served, plain = replicas.urls
        document = tmp_path / "backends.json"

        def replica(url: str, source: str, service: str | None) -> FleetBackend:
            return FleetBackend(
                model="qwen3-32b",
                url=url,
                api_key_env=None,
                cloud="aws",
                region="us-east-1",
                accelerators="H100:1",
                source=source,
                service=service,
            )

        write_document(
            document,
            FleetDocument(
                version=1,
                generated_at="2026-12-06T00:00:00Z",
                backends=(
                    replica(served, f"sky-serve:{service}/1", service),
                    replica(plain, "sky-cluster:c1", None),
                ),
                controllers={service: controller.url},
            ),
        )
        gateway = Gateway(document, tmp_path / "gateway", {}, policy="round_robin")
        started = time.time()
        async with gateway, gateway.client() as client:
            await gateway.reload()
            for _ in range(6):
                await client.chat.completions.create(
                    model="qwen3-32b", messages=[{"role": "user", "content": "hi"}], max_tokens=2
                )
            sent = {view["url"]: view["requests"] for view in gateway.pool.describe()}
    assert sent == {served: 3, plain: 3}
    stamps = controller.timestamps()
    assert len(stamps) == 3
    assert all(started <= stamp <= time.time() for stamp in stamps)
