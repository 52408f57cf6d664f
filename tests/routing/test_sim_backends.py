"""Probes and load polling against real simulator replicas: SGLang's health and load contract."""

from __future__ import annotations

import pytest

from tests.routing.stack import MODEL, sim_config
from warmgate.backends.sim import SimCluster
from warmgate.proxy.routing import Catalog, ModelEntry, Pool
from warmgate.proxy.routing.catalog import BackendSpec
from warmgate.proxy.routing.member import HealthState, Member
from warmgate.proxy.settings import HealthSettings, RoutingSettings

pytestmark = pytest.mark.anyio


def health_of(member: Member) -> HealthState:
    return member.health


def make_pool(urls: list[str], api_key_env: str | None = None, poll_s: float = 0) -> Pool:
    return Pool(
        Catalog([ModelEntry(name=MODEL, served_name=MODEL)]),
        [BackendSpec(model=MODEL, url=url, api_key_env=api_key_env) for url in urls],
        health=HealthSettings(interval_s=3600.0, timeout_s=5.0),
        routing=RoutingSettings(load_poll_interval_s=poll_s),
        environ={"SIM_KEY": "sk-sim-backend"},
    )


async def test_probes_follow_sglang_readiness_and_health_flags() -> None:
    async with SimCluster(sim_config(), replicas=3) as cluster:
        await cluster.replicas[1].set_faults(never_ready=True)
        pool = make_pool(cluster.urls)
        await pool.start()
        try:
            ready, starting, flaky = pool.members()
            assert health_of(ready) is HealthState.HEALTHY
            assert health_of(starting) is HealthState.EJECTED
            assert starting.last_probe_error == "not ready (503)"
            assert health_of(flaky) is HealthState.HEALTHY
            checker = pool.health
            assert checker is not None
            await cluster.replicas[2].set_faults(unhealthy=True)
            await checker.probe_all()
            assert health_of(flaky) is HealthState.EJECTED
            await cluster.replicas[1].set_faults(never_ready=False)
            await cluster.replicas[2].set_faults(unhealthy=False)
            await checker.probe_all()
            await checker.probe_all()
            assert [health_of(m) for m in pool.members()] == [HealthState.HEALTHY] * 3
            assert [m.ejections for m in pool.members()] == [0, 0, 1]
        finally:
            await pool.close()


async def test_load_reports_of_a_keyed_backend_are_read() -> None:
    async with SimCluster(sim_config(api_key="sk-sim-backend"), replicas=1) as cluster:
        pool = make_pool(cluster.urls, api_key_env="SIM_KEY", poll_s=3600.0)
        await pool.start()
        try:
            poller = pool.loads
            assert poller is not None
            assert await poller.poll(pool.members()[0])
            remote = pool.members()[0].remote
            assert remote is not None
            assert remote.requests == 0
        finally:
            await pool.close()
