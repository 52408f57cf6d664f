"""/health_generate passes on any engine output after the probe arrived, as SGLang's does."""

from __future__ import annotations

import anyio
import httpx
import pytest

from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.backends.sim.generation import Generation

pytestmark = pytest.mark.anyio


def long_decode(rid: str) -> Generation:
    return Generation(
        rid, prompt_tokens=16, block_hashes=[], output_tokens=1_000_000, stop_reason="length"
    )


async def test_a_probe_queued_behind_running_decodes_passes_on_their_tokens() -> None:
    # one running slot, taken by a request that decodes a million tokens: the probe cannot be
    # admitted, but SGLang's check only needs the tokenizer manager to receive some output
    config = SimConfig(model="demo", time_scale=0.0, max_running_requests=1)
    async with SimCluster(config, replicas=1) as cluster:
        scheduler = cluster.replicas[0].scheduler
        direct = long_decode("direct")
        scheduler.submit(direct)
        with anyio.fail_after(5):
            await scheduler.wait_until(lambda s: s.outputs > 0)
        async with httpx.AsyncClient(base_url=cluster.urls[0], timeout=30.0) as http:
            assert (await http.get("/health_generate")).status_code == 200
        assert not direct.finished  # it answered long before the request ahead of it ended
        assert scheduler.num_running == 1
        assert scheduler.num_waiting == 0  # the probe left the queue when it answered
        scheduler.abort(direct)


async def test_a_probe_behind_a_long_prefill_waits_for_its_first_output() -> None:
    config = SimConfig(model="demo", time_scale=0.0, chunked_prefill_size=256)
    async with SimCluster(config, replicas=1) as cluster:
        scheduler = cluster.replicas[0].scheduler
        scheduler.set_paused(True)
        prefill = Generation(
            "prefill", prompt_tokens=4096, block_hashes=[], output_tokens=1, stop_reason="length"
        )
        scheduler.submit(prefill)
        status: list[int] = []
        async with httpx.AsyncClient(base_url=cluster.urls[0], timeout=30.0) as http:

            async def probe() -> None:
                status.append((await http.get("/health_generate")).status_code)

            async with anyio.create_task_group() as group:
                group.start_soon(probe)
                with anyio.fail_after(5):
                    await scheduler.wait_until(lambda s: s.num_waiting == 2)
                scheduler.set_paused(False)
        assert status == [200]
        assert prefill.finished  # sixteen prefill chunks sent nothing back; its token did
