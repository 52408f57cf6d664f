"""Fixtures: real client libraries against `warmgate serve` in front of a simulated replica.

The gateway is the `warmgate serve` child process (tests.support.served), configured to route
model `demo` to one simulator replica running in this process; clients speak to the gateway
with a real key, as an application would. Every body the official SDK receives is checked
against the OpenAI spec at teardown (the `transport` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.support.recording import RecordingTransport, strict_sdk
from tests.support.served import ServedGateway
from warmgate.backends.sim import SimCluster, SimConfig

KEY = "wg-clients-" + "c" * 40
ENVIRON = {"WG_CLIENTS_KEY": KEY}


def config_text(data_dir: Path, url: str) -> str:
    return f"""
host = "127.0.0.1"
port = 0
data_dir = "{data_dir}"

[[keys]]
name = "clients"
secret_env = "WG_CLIENTS_KEY"

[[models]]
name = "demo"
price_per_request = "0.001"
[[models.backends]]
url = "{url}"
"""


@pytest.fixture(scope="session")
def sim() -> Iterator[SimCluster]:
    cluster = SimCluster(SimConfig(model="demo", time_scale=0.0)).start_in_thread()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def served(sim: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    root = tmp_path_factory.mktemp("clients")
    config = root / "warmgate.toml"
    config.write_text(config_text(root / "data", sim.urls[0]), encoding="utf-8")
    gateway = ServedGateway(config, environ=ENVIRON)
    yield gateway
    gateway.stop()


@pytest.fixture
def client(served: ServedGateway, transport: RecordingTransport) -> Iterator[OpenAI]:
    """The official SDK, strict, its traffic recorded and checked against the spec."""
    with strict_sdk(served.base_url, KEY, transport) as openai_client:
        yield openai_client


@pytest.fixture
def gateway_url(served: ServedGateway) -> str:
    return served.base_url


@pytest.fixture
def api_key() -> str:
    return KEY


def as_dict(value: Any) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value
