"""End to end: `fleet sync` writes the document, a running gateway routes to what it lists.

The gateway runs in the test's event loop on a real port (uvicorn), an SGLang simulator with
`--api-key` stands in for a replica, and SkyPilot's answers come from the SDK double. The
gateway's watcher is told to check the file right after each sync (`document.check()`), so
nothing waits on its poll interval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import openai
import pytest
from structlog.testing import capture_logs

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.running_gateway import Gateway
from tests.fleet.skypilot_double import SkyPilotDouble, cluster_payload
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.backends.fleet.sync import Syncer, SyncRefusedError
from warmgate.backends.sim import SimCluster, SimConfig

SGLANG_KEY = "sk-sglang-e2e-canary-4471"
ENVIRON = {"SGLANG_API_KEY": SGLANG_KEY}


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

    gateway = Gateway(document, tmp_path / "gateway", ENVIRON)
    async with gateway, gateway.client() as client:
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

    # The backends' key went from the gateway's environment to the replica, and nowhere else.
    assert SGLANG_KEY not in document.read_text()
    assert SGLANG_KEY.encode() not in gateway.log.getvalue()
    assert SGLANG_KEY not in repr(logs)
