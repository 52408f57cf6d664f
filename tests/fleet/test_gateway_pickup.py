"""End to end: `fleet sync` writes the document, a running gateway routes to what it lists.

The gateway runs in the test's event loop on a real port (uvicorn), an SGLang simulator with
`--api-key` stands in for a replica, and SkyPilot's answers come from the SDK double. The
gateway's watcher is told to check the file right after each sync (`document.check()`), so
nothing waits on its poll interval.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest
import uvicorn
from structlog.testing import capture_logs

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.skypilot_double import SkyPilotDouble, cluster_payload
from tests.support.gateway import uvicorn_config
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.backends.fleet.sync import Syncer, SyncRefusedError
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.server import base_url, bind
from warmgate.proxy.settings import parse_settings

SGLANG_KEY = "sk-sglang-e2e-canary-4471"
USER_KEY = "wg-test-" + "f" * 40
ENVIRON = {"SGLANG_API_KEY": SGLANG_KEY, "WG_FLEET_TEST_KEY": USER_KEY}


class Gateway:
    def __init__(self, document: Path, data_dir: Path) -> None:
        settings = parse_settings(
            {
                "data_dir": str(data_dir),
                # Probes only when told (a new backend is probed at once when it joins).
                "health": {"interval_s": 3600},
                "routing": {
                    "backends_document": str(document),
                    "document_poll_interval_s": 3600,
                    "load_poll_interval_s": 0,
                },
                "models": [{"name": "qwen3-32b", "price_per_request": "0.002"}],
                "keys": [{"name": "fleet-test", "secret_env": "WG_FLEET_TEST_KEY"}],
            }
        )
        self.log = io.BytesIO()
        self.app = create_app(settings, environ=ENVIRON, log_sink=self.log)
        self.sock = bind("127.0.0.1", 0)
        self.base_url = base_url(self.sock)
        self.server = uvicorn.Server(uvicorn_config(self.app))

    @property
    def pool(self) -> Any:
        return self.app.state.runtime.pool

    async def reload(self) -> bool:
        """What the watcher does on its next poll; then wait for the new backend's probe."""
        applied: bool = await self.pool.document.check()
        if self.pool.health is not None:
            await self.pool.health.probe_all()
        return applied


@pytest.fixture
async def replica() -> AsyncIterator[SimCluster]:
    config = SimConfig(
        model="Qwen/Qwen3-32B", served_model_name="qwen3-32b", api_key=SGLANG_KEY, time_scale=0.0
    )
    async with SimCluster(config, replicas=1, host="127.0.0.1", port=0) as cluster:
        yield cluster


async def chat(client: openai.AsyncOpenAI) -> str:
    reply = await client.chat.completions.create(
        model="qwen3-32b", messages=[{"role": "user", "content": "Say hi"}], max_tokens=4
    )
    return reply.model


@pytest.mark.anyio
async def test_a_running_gateway_routes_to_the_backends_fleet_sync_writes(
    sky: ModuleType, tmp_path: Path, replica: SimCluster
) -> None:
    document = tmp_path / "backends.json"
    double = SkyPilotDouble(sky, clusters=[])
    fleet = SkyPilot(double)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    sync = Syncer(fleet, lineup, document, "SGLANG_API_KEY", clock=lambda: datetime.now(UTC))
    assert sync.run_once() is not None  # version 1: no backend yet

    gateway = Gateway(document, tmp_path / "gateway")
    serving = asyncio.create_task(gateway.server.serve(sockets=[gateway.sock]))
    client = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=USER_KEY, max_retries=0)
    try:
        with capture_logs() as logs:
            with pytest.raises(openai.APIStatusError) as no_backend:
                await chat(client)  # answered once the gateway is up: nothing serves the model
            assert no_backend.value.status_code == 503

            # The replica comes up: SkyPilot reports the cluster UP with its address.
            double.clusters = [cluster_payload("wg-qwen3-32b-c1")]
            double.addresses = {"wg-qwen3-32b-c1": replica.urls[0].removeprefix("http://")}
            assert sync.run_once() is not None  # version 2
            assert await gateway.reload()
            assert await chat(client) == "qwen3-32b"
            telemetry = replica.replicas[0].telemetry
            assert telemetry.requests_completed == 1  # past the replica's --api-key check
            assert telemetry.last_request_path == "/v1/chat/completions"

            # It is gone again (preempted): losing every backend at once is refused (it reads
            # like a SkyPilot blip) and the gateway keeps routing; forced, the sync drops it
            # and the gateway follows.
            double.clusters = [cluster_payload("wg-qwen3-32b-c1", "STOPPED")]
            with pytest.raises(SyncRefusedError):
                sync.run_once()
            assert not await gateway.reload()
            assert await chat(client) == "qwen3-32b"
            sync.force = True
            assert sync.run_once() is not None  # version 3
            assert await gateway.reload()
            with pytest.raises(openai.APIStatusError) as gone:
                await chat(client)
            assert gone.value.status_code == 503
        assert gateway.pool.document.version == 3
    finally:
        await client.close()
        gateway.server.should_exit = True
        await serving
        gateway.sock.close()

    # The backends' key went from the gateway's environment to the replica, and nowhere else.
    assert SGLANG_KEY not in document.read_text()
    assert SGLANG_KEY.encode() not in gateway.log.getvalue()
    assert SGLANG_KEY not in repr(logs)
