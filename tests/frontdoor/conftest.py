"""Fixtures: the gateway's front door on a real loopback port, over a simulated SGLang replica
and a scripted backend.

Models: `demo` on the simulator (context_length 4096; embeddings there 1024 wide, declared as
`embedding_dimensions` 1024), `loose` on the same replica with neither declared, and
`scripted` on a backend that answers what a test scripts (`tests.frontdoor.scripted`).
The head timeout is short (HEADER_TIMEOUT_S), so that a slow client is shown closed without a
long wait; answers are held up to MAX_ANSWER_BYTES.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.frontdoor.scripted import ScriptedBackend
from tests.support.gateway import GatewayServer
from tests.support.recording import RecordingTransport, strict_sdk
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.proxy.settings import Settings, parse_settings

KEY = "wg-front-" + "k" * 40
ADMIN_KEY = "wg-admin-" + "a" * 40
METRICS_KEY = "wg-metrics-" + "m" * 40
ENVIRON = {"WG_FRONT_KEY": KEY, "WG_FRONT_ADMIN": ADMIN_KEY, "WG_FRONT_METRICS": METRICS_KEY}
MAX_BODY_BYTES = 256 * 1024
MAX_ANSWER_BYTES = 64 * 1024
HEADER_TIMEOUT_S = 0.5
CONTEXT_LENGTH = 4096
EMBEDDING_DIMENSIONS = 1024


def front_settings(data_dir: Path, sim_url: str, scripted_url: str) -> Settings:
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "server": {
            "max_body_bytes": MAX_BODY_BYTES,
            "max_answer_bytes": MAX_ANSWER_BYTES,
            "header_timeout_s": HEADER_TIMEOUT_S,
            "metrics_key_env": "WG_FRONT_METRICS",
        },
        "auth": {"admin_key_env": "WG_FRONT_ADMIN"},
        # The breaker must not eject the scripted backend that tests make fail on purpose.
        "health": {"enabled": False, "breaker_failures": 1000},
        "routing": {"load_poll_interval_s": 0, "policy": "round_robin"},
        "ledger": {"flush_interval_ms": 20},
        "upstream": {"connect_timeout_s": 2.0, "read_timeout_s": 30.0, "max_attempts": 1},
        "models": [
            {
                "name": "demo",
                "price_per_request": "0.002",
                "context_length": CONTEXT_LENGTH,
                "embedding_dimensions": EMBEDDING_DIMENSIONS,
                "backends": [{"url": sim_url}],
            },
            {"name": "loose", "served_name": "demo", "backends": [{"url": sim_url}]},
            {
                "name": "scripted",
                "served_name": "demo",
                "price_per_request": "0.001",
                "backends": [{"url": scripted_url}],
            },
        ],
        "keys": [{"name": "front", "secret_env": "WG_FRONT_KEY"}],
    }
    return parse_settings(raw)


@pytest.fixture(scope="session")
def front_sim() -> Iterator[Any]:
    config = SimConfig(model="demo", time_scale=0.0, output_tokens_mean=8, embedding_dim=1024)
    cluster = SimCluster(config, replicas=1).start_in_thread()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def scripted() -> Iterator[ScriptedBackend]:
    backend = ScriptedBackend().start()
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def front(
    front_sim: Any, scripted: ScriptedBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = front_settings(tmp_path_factory.mktemp("front"), front_sim.urls[0], scripted.url)
    server = GatewayServer(settings, environ=ENVIRON).start()
    yield server
    server.stop()


@pytest.fixture
def client(front: GatewayServer, transport: RecordingTransport) -> Iterator[OpenAI]:
    """The official SDK, strict, its answers checked against the spec after the test."""
    with strict_sdk(front.base_url, KEY, transport) as sdk:
        yield sdk


@pytest.fixture
def http(front: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=front.root, timeout=30) as raw:
        yield raw
