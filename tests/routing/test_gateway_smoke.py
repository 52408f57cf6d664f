"""The pool inside the running gateway: requests reach every replica, admin and metrics show it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.routing.stack import ADMIN_KEY, MODEL, gateway_settings, running_gateway, sim_cluster

pytestmark = pytest.mark.anyio


async def test_round_robin_through_the_gateway_spreads_requests_evenly(tmp_path: Path) -> None:
    async with sim_cluster(3) as cluster:
        settings = gateway_settings(cluster.urls, tmp_path, policy="round_robin")
        async with running_gateway(settings) as gateway:
            for i in range(12):
                reply = await gateway.client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"hi {i}"}], max_tokens=4
                )
                assert reply.choices[0].message.content
            served = [r.telemetry.requests_received for r in cluster.replicas]
            assert served == [4, 4, 4]
            async with httpx.AsyncClient(base_url=gateway.root) as http:
                denied = await http.get("/admin/backends")
                assert denied.status_code == 401
                assert denied.json()["error"]["code"] == "invalid_api_key"
                admin = await http.get(
                    "/admin/backends", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
                )
                assert admin.status_code == 200
                views = admin.json()["data"]
                assert sorted(v["url"] for v in views) == sorted(cluster.urls)
                assert {v["health"] for v in views} == {"healthy"}
                assert [v["requests"] for v in views] == [4, 4, 4]
                metrics = (await http.get("/metrics")).text
                for url in cluster.urls:
                    line = (
                        f'warmgate_backend_requests_total{{backend="{MODEL}@{url}",'
                        f'model="{MODEL}",outcome="ok"}} 4'
                    )
                    assert line in metrics
