"""Fixtures: simulated SGLang replicas on real ports, the gateway in front of them, SDK clients.

The gateway serves three models:
- `demo` on two replicas (alias `demo-latest`),
- `acme/demo-7b` (an id with a `/`) on the first replica, served there as `demo`,
- `guarded` and `locked` on a replica started with an API key: `guarded` holds the key,
  `locked` does not,
- `fragile` on two replicas of its own (real-time decoding) whose faults tests switch.
Every response an SDK client receives is validated against the official spec at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import msgspec
import pytest
from openai import OpenAI

from tests.support.gateway import GatewayServer
from tests.support.recording import RecordingTransport, strict_sdk
from warmgate.backends.sim import Faults, SimCluster, SimConfig
from warmgate.proxy.settings import Settings, parse_settings

KEY = "wg-test-" + "k" * 40
ONLY_ACME_KEY = "wg-test-" + "a" * 40
AUTH_HEADER = f"Authorization: Bearer {KEY}"
BACKEND_KEY = "sglang-backend-secret"
ENVIRON = {"WG_TEST_KEY": KEY, "WG_ACME_KEY": ONLY_ACME_KEY, "WG_BACKEND_KEY": BACKEND_KEY}
MAX_BODY_BYTES = 256 * 1024


def sim_config(model: str, **changes: Any) -> SimConfig:
    settings: dict[str, Any] = {
        "time_scale": 0.0,
        "enable_cache_report": True,
        "enable_metrics": True,
        "output_tokens_mean": 12,
        **changes,
    }
    return SimConfig(model=model, **settings)


@pytest.fixture(scope="session")
def sim() -> Iterator[Any]:
    cluster = SimCluster(sim_config("demo"), replicas=2).start_in_thread()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def fragile_sim() -> Iterator[Any]:
    """Two replicas in real time (12 ms a token), so a stream can be left half way."""
    cluster = SimCluster(sim_config("demo", time_scale=1.0), replicas=2).start_in_thread()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def locked_sim() -> Iterator[Any]:
    """A replica started with `--api-key`: only the gateway's backend key opens it."""
    cluster = SimCluster(sim_config("demo", api_key=BACKEND_KEY), replicas=1).start_in_thread()
    yield cluster
    cluster.stop()


@pytest.fixture
def fragile(gateway: GatewayServer, fragile_sim: Any) -> Iterator[Any]:
    """The `fragile` model's replicas; whatever faults a test sets are cleared after it."""
    yield fragile_sim
    for index in range(len(fragile_sim.replicas)):
        fragile_sim.set_faults_from_thread(index, **msgspec.structs.asdict(Faults()))


def gateway_settings(
    data_dir: Path, sim_urls: list[str], fragile_urls: list[str], locked_urls: list[str]
) -> Settings:
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "server": {"max_body_bytes": MAX_BODY_BYTES, "access_log": True},
        # No probe or load poll during a test: the first round at start decides health.
        # The breaker is the routing tests' subject; here it must not eject a replica a test
        # made fail on purpose.
        "health": {"interval_s": 3600, "probe_path": "/health", "breaker_failures": 1000},
        "routing": {"load_poll_interval_s": 0, "policy": "round_robin"},
        "ledger": {"flush_interval_ms": 20},
        "upstream": {"connect_timeout_s": 2.0, "read_timeout_s": 30.0},
        "models": [
            {
                "name": "demo",
                "aliases": ["demo-latest"],
                "price_per_request": "0.002",
                "context_length": 131072,
                "backends": [{"url": url} for url in sim_urls],
            },
            {
                "name": "acme/demo-7b",
                "served_name": "demo",
                "price_per_request": "0.001",
                "backends": [{"url": sim_urls[0]}],
            },
            {
                "name": "fragile",
                "served_name": "demo",
                "price_per_request": "0.001",
                "backends": [{"url": url} for url in fragile_urls],
            },
            {
                "name": "guarded",
                "served_name": "demo",
                "backends": [{"url": url, "api_key_env": "WG_BACKEND_KEY"} for url in locked_urls],
            },
            {
                "name": "locked",  # the same replica, but no backend key configured
                "served_name": "demo",
                "backends": [{"url": url} for url in locked_urls],
            },
        ],
        "keys": [
            {"name": "tester", "secret_env": "WG_TEST_KEY"},
            {"name": "acme-only", "secret_env": "WG_ACME_KEY", "allowed_models": ["acme/demo-7b"]},
        ],
    }
    return parse_settings(raw)


@pytest.fixture(scope="session")
def gateway(
    sim: Any, fragile_sim: Any, locked_sim: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    data_dir = tmp_path_factory.mktemp("gateway")
    settings = gateway_settings(
        data_dir, list(sim.urls), list(fragile_sim.urls), list(locked_sim.urls)
    )
    server = GatewayServer(settings, environ=ENVIRON).start()
    yield server
    server.stop()


@pytest.fixture
def client(gateway: GatewayServer, transport: RecordingTransport) -> Iterator[OpenAI]:
    """The official SDK, strict: it raises on any response that breaks its types."""
    with strict_sdk(gateway.base_url, KEY, transport) as sdk:
        yield sdk


@pytest.fixture
def lenient_client(gateway: GatewayServer, transport: RecordingTransport) -> Iterator[OpenAI]:
    """The SDK without strict validation, for the two answers whose strict check fails against
    OpenAI itself: legacy completion chunks (`finish_reason: null` mid-stream, typed as never
    null by the SDK) and base64 embeddings (validated as float lists before the SDK decodes
    them). Their bodies are still checked against the spec by `transport`."""
    with OpenAI(
        base_url=gateway.base_url,
        api_key=KEY,
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    ) as sdk:
        yield sdk


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    """Raw HTTP for what the SDK cannot send (wrong methods, bad bodies, odd headers)."""
    with httpx.Client(base_url=gateway.root, timeout=30) as raw:
        yield raw


SimStats = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="session")
def sim_stats() -> Iterator[SimStats]:
    """`sim_stats(replica_url)`: the replica's /_sim/stats (what reached it, what it aborted),
    over one pooled connection so that polling it is cheap."""
    with httpx.Client(timeout=10) as control:

        def read(url: str) -> dict[str, Any]:
            response = control.get(url + "/_sim/stats")
            response.raise_for_status()
            stats: dict[str, Any] = msgspec.json.decode(response.content)
            return stats

        yield read
