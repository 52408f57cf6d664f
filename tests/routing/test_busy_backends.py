"""A backend busy with someone else's long prefill keeps its place in the pool."""

from __future__ import annotations

import anyio
import httpx
import pytest

from tests.routing.stack import MODEL, sim_config
from warmgate.backends.sim import SimCluster
from warmgate.proxy.routing import Catalog, ModelEntry, Pool
from warmgate.proxy.routing.catalog import BackendSpec
from warmgate.proxy.routing.health import Verdict
from warmgate.proxy.routing.member import HealthState
from warmgate.proxy.settings import HealthSettings, RoutingSettings

pytestmark = pytest.mark.anyio


async def test_a_probe_timing_out_behind_direct_traffic_does_not_eject_the_backend() -> None:
    # a 64k-token prompt prefills in 8 chunks of ~0.4 s each (wall): no engine output for
    # ~3 s, far past the probe's 0.25 s timeout, while /v1/loads keeps answering
    config = sim_config(time_scale=0.05, prefill_tokens_per_s=1000.0)
    async with SimCluster(config, replicas=1) as cluster:
        pool = Pool(
            Catalog([ModelEntry(name=MODEL, served_name=MODEL)]),
            [BackendSpec(model=MODEL, url=cluster.urls[0])],
            health=HealthSettings(interval_s=3600.0, timeout_s=0.25, eject_after=2),
            routing=RoutingSettings(load_poll_interval_s=3600.0),
        )
        await pool.start()
        try:
            checker, poller = pool.health, pool.loads
            assert checker is not None
            assert poller is not None
            (member,) = pool.members()
            assert member.health is HealthState.HEALTHY
            scheduler = cluster.replicas[0].scheduler
            answers: list[int] = []
            async with (
                httpx.AsyncClient(base_url=cluster.urls[0], timeout=60.0) as direct,
                anyio.create_task_group() as group,
            ):

                async def send_long_prompt() -> None:
                    body = {"input_ids": [7] * 65_536, "sampling_params": {"max_new_tokens": 1}}
                    answers.append((await direct.post("/generate", json=body)).status_code)

                group.start_soon(send_long_prompt)
                with anyio.fail_after(10):
                    await scheduler.wait_until(lambda s: s.num_running == 1)
                assert member.outstanding == 0  # none of it is the gateway's
                assert await poller.poll(member)
                assert member.remote is not None
                assert member.remote.requests == 1
                verdicts = [(await checker.check(member)).verdict for _ in range(2)]
                assert answers == []  # still prefilling: both probes timed out behind it
                assert verdicts == [Verdict.BUSY, Verdict.BUSY]
                assert member.health is HealthState.HEALTHY
                assert pool.ready()
            assert answers == [200]
            assert (await checker.check(member)).verdict is Verdict.PASS  # idle again
        finally:
            await pool.close()
