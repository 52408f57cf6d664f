"""`GET /metrics` of a gateway that served real requests, read with prometheus-client's own
parser: every series operators ask for is there, with the values the requests produced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.gateway import GatewayServer
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.proxy.settings import parse_settings

BUSY = "wg-test-" + "b" * 40
QUIET = "wg-test-" + "q" * 40
RPM_1 = "wg-test-" + "r" * 40
QUOTA_1 = "wg-test-" + "u" * 40
ENVIRON = {"WG_BUSY": BUSY, "WG_QUIET": QUIET, "WG_RPM": RPM_1, "WG_QUOTA": QUOTA_1}
PROMPT: Any = [{"role": "user", "content": "Tell me about the sea. " * 20}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    config = SimConfig(model="demo", time_scale=0.0, enable_cache_report=True)
    sim = SimCluster(config, replicas=1).start_in_thread()
    data_dir: Path = tmp_path_factory.mktemp("metrics")
    settings = parse_settings(
        {
            "data_dir": str(data_dir),
            "health": {"interval_s": 3600, "probe_path": "/health"},
            "routing": {"load_poll_interval_s": 0},
            "ledger": {"flush_interval_ms": 20},
            "metrics": {"top_keys": 1},
            "models": [
                {
                    "name": "demo",
                    "price_per_request": "0.002",
                    "backends": [{"url": url} for url in sim.urls],
                }
            ],
            "keys": [
                {"name": "busy", "secret_env": "WG_BUSY"},
                {"name": "quiet", "secret_env": "WG_QUIET"},
                {"name": "rpm", "secret_env": "WG_RPM", "rpm": 1},
                {"name": "quota", "secret_env": "WG_QUOTA", "quota": 1, "quota_period": "day"},
            ],
        }
    )
    server = GatewayServer(settings, environ=ENVIRON).start()
    yield server
    server.stop()
    sim.stop()


def ask(gateway: GatewayServer, secret: str) -> int:
    with OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0) as client:
        try:
            client.chat.completions.create(model="demo", messages=PROMPT, max_tokens=4)
        except openai.RateLimitError:
            return 429
    return 200


def scrape(gateway: GatewayServer) -> dict[str, list[Sample]]:
    response = httpx.get(gateway.root + "/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


def values(samples: list[Sample], **labels: str) -> list[float]:
    return [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]


def test_metrics_carry_tokens_billing_refusals_keys_ledger_and_process_series(
    gateway: GatewayServer,
) -> None:
    statuses = [ask(gateway, BUSY) for _ in range(3)]
    statuses += [ask(gateway, QUIET)]
    statuses += [ask(gateway, RPM_1), ask(gateway, RPM_1)]
    statuses += [ask(gateway, QUOTA_1), ask(gateway, QUOTA_1)]
    assert statuses == [200, 200, 200, 200, 200, 429, 200, 429]
    # The usage endpoint flushes the ledger first: the flush is timed by then.
    usage = httpx.get(gateway.base_url + "/usage", headers={"Authorization": f"Bearer {BUSY}"})
    assert usage.status_code == 200

    metrics = scrape(gateway)

    answered = 6
    assert values(metrics["warmgate_model_requests"], model="demo", status="200") == [answered]
    assert values(metrics["warmgate_model_requests"], model="demo", status="429") == [2]
    tokens = metrics["warmgate_model_tokens"]
    prompt = values(tokens, model="demo", kind="prompt")[0]
    cached = values(tokens, model="demo", kind="cached")[0]
    completion = values(tokens, model="demo", kind="completion")[0]
    assert prompt > 0
    assert 0 < cached < prompt  # the same prompt again: the replica's prefix cache answered
    assert completion == 4 * answered
    assert values(metrics["warmgate_model_billed_requests"], model="demo") == [answered]
    assert values(metrics["warmgate_model_revenue_usd"], model="demo") == [
        pytest.approx(0.002 * answered)
    ]
    # 429s by the limit that refused them.
    assert values(metrics["warmgate_rate_limited"], limit="quota") == [1]
    assert sum(values(metrics["warmgate_rate_limited"])) == 2
    # Per key: only the busiest one (top_keys = 1), whatever the number of keys.
    assert [s.labels["key"] for s in metrics["warmgate_key_requests"]] == ["key_busy"]
    assert values(metrics["warmgate_key_requests"], key="key_busy") == [3]
    assert values(metrics["warmgate_key_revenue_usd"], key="key_busy") == [pytest.approx(0.006)]
    # The ledger: its queue, what it wrote, how long its flushes took.
    assert "warmgate_ledger_queue_rows" in metrics
    assert values(metrics["warmgate_ledger_flush_seconds"], le="+Inf")[0] >= 1
    assert values(metrics["warmgate_ledger_rows_written"])[0] >= 1
    # The process itself.
    assert values(metrics["process_cpu_seconds"])[0] > 0
    assert values(metrics["process_resident_memory_bytes"])[0] > 10_000_000
    assert values(metrics["process_open_fds"])[0] > 0
    assert {s.labels["generation"] for s in metrics["python_gc_collections"]} == {"0", "1", "2"}
