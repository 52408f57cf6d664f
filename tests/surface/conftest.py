"""Fixtures: two simulated SGLang replicas, `warmgate serve` in front, the official SDK.

Models: `demo` (both replicas, round robin, so a stored response is found only if its id
routes back to its replica), `whisper-large-v3` and `painter` (served by the replicas as
`demo`: the gateway must rewrite the model), and `chat-only` on a backend without these
routes. Every body an SDK client receives is checked
against the official spec at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from openai import OpenAI

from tests.support.recording import RecordingTransport, strict_sdk
from tests.support.served import ServedGateway
from tests.surface.stub import ChatOnlyBackend
from warmgate.backends.sim import SimCluster, SimConfig

KEY = "wg-surface-" + "s" * 40
OTHER_KEY = "wg-surface-" + "o" * 40
ENVIRON = {"WG_SURFACE_KEY": KEY, "WG_OTHER_KEY": OTHER_KEY}
MAX_AUDIO_BYTES = 256 * 1024


def config_text(data_dir: Path, urls: list[str], chat_only_url: str) -> str:
    backends = "\n".join(f'[[models.backends]]\nurl = "{url}"' for url in urls)
    return f"""
host = "127.0.0.1"
port = 0
data_dir = "{data_dir}"

[server]
max_audio_bytes = {MAX_AUDIO_BYTES}

[routing]
policy = "round_robin"
load_poll_interval_s = 0

[[keys]]
name = "surface"
secret_env = "WG_SURFACE_KEY"

[[keys]]
name = "other"
secret_env = "WG_OTHER_KEY"

[[models]]
name = "demo"
price_per_request = "0.002"
{backends}

[[models]]
name = "whisper-large-v3"
served_name = "demo"
price_per_request = "0.006"
[[models.backends]]
url = "{urls[0]}"

[[models]]
name = "painter"
served_name = "demo"
price_per_request = "0.04"
[[models.backends]]
url = "{urls[1]}"

[[models]]
name = "chat-only"
price_per_request = "0.001"
[[models.backends]]
url = "{chat_only_url}"
"""


@pytest.fixture(scope="session")
def sim() -> Iterator[Any]:
    config = SimConfig(model="demo", time_scale=0.0, output_tokens_mean=12)
    cluster = SimCluster(config, replicas=2).start_in_thread()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def chat_only() -> Iterator[ChatOnlyBackend]:
    backend = ChatOnlyBackend().start()
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def served(
    sim: Any, chat_only: ChatOnlyBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    root = tmp_path_factory.mktemp("surface")
    (root / "tmp").mkdir()
    config = root / "warmgate.toml"
    config.write_text(config_text(root / "data", list(sim.urls), chat_only.url), encoding="utf-8")
    gateway = ServedGateway(config, environ=ENVIRON, tmpdir=root / "tmp")
    yield gateway
    gateway.stop()


@pytest.fixture
def client(served: ServedGateway, transport: RecordingTransport) -> Iterator[OpenAI]:
    with strict_sdk(served.base_url, KEY, transport) as openai_client:
        yield openai_client


@pytest.fixture
def other_client(served: ServedGateway, transport: RecordingTransport) -> Iterator[OpenAI]:
    with strict_sdk(served.base_url, OTHER_KEY, transport) as openai_client:
        yield openai_client


@pytest.fixture
def http(served: ServedGateway) -> Iterator[httpx.Client]:
    """Raw HTTP for what the SDK will not send (no file, wrong types, wrong content type)."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=served.base_url, headers=headers, timeout=30) as raw:
        yield raw


def sim_stats(url: str) -> dict[str, Any]:
    response = httpx.get(url + "/_sim/stats", timeout=10)
    response.raise_for_status()
    stats: dict[str, Any] = msgspec.json.decode(response.content)
    return stats


def set_faults(url: str, **faults: Any) -> None:
    response = httpx.post(url + "/_sim/faults", json=faults, timeout=10)
    response.raise_for_status()


def received(sim: Any) -> int:
    """Requests the replicas have received in all."""
    return sum(sim_stats(url)["requests_received"] for url in sim.urls)
