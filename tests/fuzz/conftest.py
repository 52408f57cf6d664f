"""The gateway over one simulated replica, for the fuzz: every endpoint of the table is served
(the simulator has them all), so a fuzzed request that passes validation reaches a backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayServer
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.proxy.settings import Settings, parse_settings

KEY = "wg-fuzz-" + "f" * 40
ENVIRON = {"WG_FUZZ_KEY": KEY}


def fuzz_settings(data_dir: Path, sim_url: str) -> Settings:
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "server": {"access_log": False},
        "health": {"enabled": False, "breaker_failures": 1_000_000},
        "routing": {"load_poll_interval_s": 0},
        "ledger": {"flush_interval_ms": 50},
        "models": [
            {
                "name": "demo",
                "context_length": 8192,
                "embedding_dimensions": 1024,
                "backends": [{"url": sim_url}],
            }
        ],
        "keys": [{"name": "fuzz", "secret_env": "WG_FUZZ_KEY"}],
    }
    return parse_settings(raw)


@pytest.fixture(scope="session")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    sim = SimCluster(
        SimConfig(model="demo", time_scale=0.0, output_tokens_mean=4), replicas=1
    ).start_in_thread()
    server = GatewayServer(
        fuzz_settings(tmp_path_factory.mktemp("fuzz"), sim.urls[0]), environ=ENVIRON
    ).start()
    yield server
    server.stop()
    sim.stop()


@pytest.fixture(scope="session")
def fuzz_http(fuzz_gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fuzz_gateway.root, timeout=30, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client
