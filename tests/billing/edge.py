"""A gateway for the billing tests: simulated replicas, a store URL, the admin key, SDK clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

from tests.support.gateway import GatewayServer
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.proxy.settings import Settings, parse_settings

ADMIN_KEY = "wg-admin-" + "z" * 40
PRICE = "0.002"
PRICE_MICRO_USD = 2000


def sim_cluster(*, replicas: int = 1, time_scale: float = 1.0, **changes: Any) -> Any:
    """Replicas in real time by default (12 ms a token), so streams can be left half way."""
    config = SimConfig(
        model="demo",
        time_scale=time_scale,
        enable_cache_report=True,
        output_tokens_mean=2000,  # long natural answers; max_tokens cuts the short ones
        **changes,
    )
    return SimCluster(config, replicas=replicas).start_in_thread()


def edge_settings(
    ledger_url: str,
    demo_urls: list[str],
    broken_urls: list[str] | None = None,
    *,
    redis_url: str | None = None,
    keys: list[dict[str, Any]] | None = None,
    flush_interval_ms: int = 20,
    limits_enabled: bool = True,
    data_dir: Path | None = None,
    ledger: dict[str, Any] | None = None,
) -> Settings:
    """`data_dir` (the ledger's spool): by default the SQLite file's folder; `ledger`: more
    `[ledger]` settings."""
    models: list[dict[str, Any]] = [
        {
            "name": "demo",
            "price_per_request": PRICE,
            "backends": [{"url": url} for url in demo_urls],
        },
        {"name": "other", "served_name": "demo", "backends": [{"url": demo_urls[0]}]},
    ]
    if broken_urls:
        models.append(
            {
                "name": "broken",
                "served_name": "demo",
                "price_per_request": PRICE,
                "backends": [{"url": url} for url in broken_urls],
            }
        )
    if data_dir is None and ledger_url.startswith("sqlite:///"):
        data_dir = Path(ledger_url.removeprefix("sqlite:///")).parent
    raw: dict[str, Any] = {
        "health": {"interval_s": 3600, "probe_path": "/health", "breaker_failures": 1000},
        "routing": {"load_poll_interval_s": 0, "policy": "round_robin"},
        "upstream": {"max_attempts": 1},
        "auth": {"admin_key_env": "WG_ADMIN_KEY", "refresh_interval_s": 3600},
        "limits": {"redis_url": redis_url, "enabled": limits_enabled},
        "ledger": {"url": ledger_url, "flush_interval_ms": flush_interval_ms, **(ledger or {})},
        "models": models,
        "keys": keys or [],
    }
    if data_dir is not None:
        raw["data_dir"] = str(data_dir)
    return parse_settings(raw)


@contextmanager
def running_edge(settings: Settings, environ: dict[str, str] | None = None) -> Iterator[Edge]:
    server = GatewayServer(settings, environ={"WG_ADMIN_KEY": ADMIN_KEY, **(environ or {})})
    server.start()
    try:
        with httpx.Client(base_url=server.root, timeout=30) as http:
            edge = Edge(server, http)
            try:
                yield edge
            finally:
                for client in edge.clients:
                    client.close()
    finally:
        server.stop()


class Edge:
    def __init__(self, server: GatewayServer, http: httpx.Client) -> None:
        self.server = server
        self.http = http
        self.base_url = server.base_url
        self.clients: list[OpenAI] = []

    def sdk(self, secret: str) -> OpenAI:
        """An SDK client without retries, closed with the edge."""
        client = OpenAI(base_url=self.base_url, api_key=secret, max_retries=0)
        self.clients.append(client)
        return client

    def admin(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {ADMIN_KEY}", **(headers or {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def create_key(self, **spec: Any) -> tuple[str, str]:
        """(key id, secret) of a new key made through the admin API."""
        response = self.admin("POST", "/admin/keys", json={"name": "user", **spec})
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["secret"]

    def get(self, path: str, secret: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, headers={"authorization": f"Bearer {secret}"}, **kwargs)
