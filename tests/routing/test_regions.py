"""Regions over real HTTP: an edge serves from its own region while it can, fails over to the
other region (measured farther by its probes) without a client error, and comes back."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.routing.stack import (
    MODEL,
    ClientLoad,
    Gateway,
    gateway_settings,
    running_gateway,
    sim_config,
)
from warmgate.backends.sim import SimCluster
from warmgate.proxy.routing.member import HealthState
from warmgate.proxy.settings import BackendSettings, HealthSettings, ServerSettings, Settings

pytestmark = pytest.mark.anyio

REGIONS = ["eu", "eu", "us", "us"]
FAR_DELAY_MS = 40.0


def regional_settings(urls: list[str], data_dir: Path) -> Settings:
    health = HealthSettings(
        interval_s=0.05, timeout_s=2.0, eject_after=2, readmit_after=2, slow_start_s=0
    )
    settings = gateway_settings(urls, data_dir, health=health)
    model = msgspec.structs.replace(
        settings.models[0],
        backends=[
            BackendSettings(url=url, region=region)
            for url, region in zip(urls, REGIONS, strict=True)
        ],
    )
    server = ServerSettings(access_log=True, region="eu")
    return msgspec.structs.replace(settings, models=[model], server=server)


def regional_cluster() -> SimCluster:
    # time_scale 1: the far replicas' network delay is real; tiny answers keep it quick
    config = sim_config(time_scale=1.0)
    delays = [0.0 if region == "eu" else FAR_DELAY_MS for region in REGIONS]
    return SimCluster(config, replicas=len(REGIONS), network_delay_ms=delays)


def region_of(gateway: Gateway, backend_id: str) -> str | None:
    return next(m.backend.region for m in gateway.pool.members() if m.backend.id == backend_id)


async def ask(gateway: Gateway, text: str) -> str:
    reply = await gateway.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=2
    )
    return reply.id


async def test_an_edge_keeps_its_own_region_and_measures_the_other_one_farther(
    tmp_path: Path,
) -> None:
    cluster = regional_cluster()
    async with cluster, running_gateway(regional_settings(cluster.urls, tmp_path)) as gateway:
        members = gateway.pool.members()
        await gateway.wait_for(lambda: all(m.rtt_s is not None for m in members))
        ids: list[str] = []
        for batch in range(20):  # ten conversations at once
            ids += await asyncio.gather(
                *(ask(gateway, f"conversation {batch}-{n}: " + "hello " * 60) for n in range(10))
            )
        served = gateway.backends_by_request()
        regions = Counter(region_of(gateway, served[rid]) for rid in ids)
        assert regions["eu"] / len(ids) >= 0.99
        rtt = {m.backend.region: m.rtt_s or 0.0 for m in members}
        assert rtt["us"] > rtt["eu"] + 0.02  # 40 ms added each way out of the far ones
        admin = await gateway.client.get(
            gateway.root + "/admin/backends",
            cast_to=object,
            options={"headers": {"Authorization": "Bearer sk-routing-admin-key"}},
        )
        assert isinstance(admin, dict)
        assert admin["region"] == "eu"
        assert {b["region"] for b in admin["data"]} == {"eu", "us"}
        assert all(b["rtt_ms"] > 0 for b in admin["data"])
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(gateway.root + "/metrics")).text
        far_rtt = [
            line for line in metrics.splitlines()
            if line.startswith("warmgate_backend_rtt_seconds{") and 'region="us"' in line
        ]  # fmt: skip
        assert len(far_rtt) == 2
        assert all(float(line.rsplit(" ", 1)[1]) > 0.02 for line in far_rtt)


async def test_losing_the_local_replicas_fails_over_without_errors_and_comes_back(
    tmp_path: Path,
) -> None:
    cluster = regional_cluster()
    async with cluster, running_gateway(regional_settings(cluster.urls, tmp_path)) as gateway:
        local = [m for m in gateway.pool.members() if m.backend.region == "eu"]

        def served_in(region: str, ids: list[str]) -> int:
            served = gateway.backends_by_request()
            return sum(region_of(gateway, served[rid]) == region for rid in ids)

        async with ClientLoad(gateway) as load:
            answers = load.answers
            await gateway.wait_for(lambda: len(answers) >= 30, 60)
            assert served_in("us", list(answers)) == 0

            for replica in cluster.replicas[:2]:
                await replica.set_faults(refuse_connections=True)
            await gateway.wait_for(lambda: all(m.health is HealthState.EJECTED for m in local), 60)
            during = len(answers)
            await gateway.wait_for(lambda: len(answers) >= during + 30, 60)
            assert served_in("us", answers[during:]) == len(answers) - during

            for replica in cluster.replicas[:2]:
                await replica.set_faults(refuse_connections=False)
            await gateway.wait_for(lambda: all(m.health is HealthState.HEALTHY for m in local), 60)
            back = len(answers)
            await gateway.wait_for(lambda: len(answers) >= back + 30, 60)
        # requests sent after the readmission (some were routed before it) are local again
        assert served_in("eu", answers[back + 6 :]) == len(answers) - back - 6
        assert load.errors == []
