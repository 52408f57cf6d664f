"""A backend key rotated through a rolling update while clients keep sending: nothing fails.

Two replicas run with the old key; `fleet update --key-env SGLANG_API_KEY_2` has SkyServe roll
them one by one to replicas launched with the new key, each labelled with the variable that
holds its key. Every step is what SkyServe reports (the SDK double) turned into a document by
`fleet sync`, picked up by a running gateway whose environment holds both keys; the replicas
are SGLang simulators, each checking the key it was launched with. At each step a request is
held on the replica about to be retired, so the swap happens with work in flight there; the
retired replica is stopped (SkyServe's tear-down) once that work is done, while the load goes
on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest
from structlog.testing import capture_logs

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.running_gateway import Gateway
from tests.fleet.skypilot_double import SkyPilotDouble, replica_payload, service_payload
from warmgate.backends.fleet.document import read_document
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.naming import KEY_ENV_LABEL
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.backends.fleet.sync import Syncer
from warmgate.backends.sim import SimCluster, SimConfig

OLD_KEY = "sk-old-canary-5521"
NEW_KEY = "sk-new-canary-9034"
ENVIRON = {"SGLANG_API_KEY": OLD_KEY, "SGLANG_API_KEY_2": NEW_KEY}
SERVICE = "wg-qwen3-32b-us-east-1"
WORKERS = 6  # half of them stream
PER_STEP = 12  # completed requests that must pass between two steps


class Load:
    """Clients sending chat completions back to back until stopped; every finished request
    (answered or failed) wakes whoever waits on `until`."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client
        self.completed = 0
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()

    async def worker(self, index: int) -> None:
        sent = 0
        while not self._stop.is_set():
            sent += 1
            # Distinct prompts: no prefix-cache affinity pins a worker to one replica.
            content = f"worker {index} request {sent}: say hi"
            try:
                if index % 2:
                    stream = await self.client.chat.completions.create(
                        model="qwen3-32b",
                        messages=[{"role": "user", "content": content}],
                        max_tokens=8,
                        stream=True,
                    )
                    finish = [c.choices[0].finish_reason async for c in stream if c.choices]
                    assert finish[-1] in {"stop", "length"}, finish
                else:
                    reply = await self.client.chat.completions.create(
                        model="qwen3-32b",
                        messages=[{"role": "user", "content": content}],
                        max_tokens=8,
                    )
                    assert reply.choices[0].finish_reason in {"stop", "length"}
                self.completed += 1
            except (openai.APIError, AssertionError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self._changed.set()
            self._changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def more(self, count: int) -> None:
        target = self.completed + count
        await self.until(lambda: self.completed >= target)

    def stop(self) -> None:
        self._stop.set()


def replica(replica_id: int, status: str, sim: SimCluster, key_env: str, version: int) -> Any:
    return replica_payload(
        replica_id,
        status,
        sim.urls[0],
        version=version,
        labels={KEY_ENV_LABEL: key_env.lower()},
        cluster=f"{SERVICE}-{replica_id}",
    )


def service(*replicas: Any, active: list[int]) -> list[dict[str, Any]]:
    return [
        service_payload(SERVICE, "READY", "http://198.51.100.1:30002", list(replicas),
                        active_versions=active)
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def simulator(key: str) -> AsyncIterator[SimCluster]:
    config = SimConfig(
        model="Qwen/Qwen3-32B", served_model_name="qwen3-32b", api_key=key, time_scale=0.0
    )
    async with SimCluster(config, host="127.0.0.1", port=0) as cluster:
        yield cluster


async def hold_one_request(sim: SimCluster) -> None:
    """Hold the requests that reach `sim` before their first byte, until one is held there."""
    held = sim.replicas[0]
    await held.set_faults(hang_before_first_byte=True)
    await held.scheduler.wait_until(lambda _: held.held >= 1)


async def retire(sim: SimCluster, gateway: Gateway, load: Load) -> int:
    """Release the held work on a replica the document no longer lists, wait until the
    gateway has no request left on it, then stop it. Returns the requests it answered."""
    url = sim.urls[0]
    assert url not in gateway.routable_urls()  # no new request goes there
    await sim.replicas[0].set_faults(hang_before_first_byte=False)
    await load.until(lambda: all(view["url"] != url for view in gateway.pool.describe()))
    answered = sim.replicas[0].telemetry.requests_completed
    await sim.close()
    return answered


@pytest.mark.anyio
async def test_a_rolling_key_rotation_drops_no_client_request(
    sky: ModuleType, tmp_path: Path
) -> None:
    document = tmp_path / "backends.json"
    double = SkyPilotDouble(sky)
    fleet = SkyPilot(double)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    sync = Syncer(fleet, lineup, document, "SGLANG_API_KEY", clock=lambda: datetime.now(UTC))
    gateway = Gateway(document, tmp_path / "gateway", ENVIRON, policy="least_outstanding")
    old_key, new_key = "SGLANG_API_KEY", "SGLANG_API_KEY_2"

    async with (
        simulator(OLD_KEY) as a_old,
        simulator(OLD_KEY) as b_old,
        simulator(NEW_KEY) as a_new,
        simulator(NEW_KEY) as b_new,
    ):
        # Version 1: two replicas launched with the old key.
        double.services = service(
            replica(1, "READY", a_old, old_key, 1),
            replica(2, "READY", b_old, old_key, 1),
            active=[1],
        )
        sync.run_once()
        with capture_logs() as logs:
            async with gateway, gateway.client() as client:
                load = Load(client)
                async with asyncio.TaskGroup() as group:
                    for index in range(WORKERS):
                        group.create_task(load.worker(index))
                    await load.more(PER_STEP)

                    # Rolling step 1: replica 3 (new key) is READY, replica 1 is scaled down.
                    await hold_one_request(a_old)
                    double.services = service(
                        replica(1, "SHUTTING_DOWN", a_old, old_key, 1),
                        replica(2, "READY", b_old, old_key, 1),
                        replica(3, "READY", a_new, new_key, 2),
                        active=[1, 2],
                    )
                    sync.run_once()
                    assert await gateway.reload()
                    assert gateway.routable_urls() == {b_old.urls[0], a_new.urls[0]}
                    await load.more(PER_STEP)
                    await load.until(lambda: a_new.replicas[0].telemetry.requests_completed > 0)
                    a_old_answered = await retire(a_old, gateway, load)
                    await load.more(PER_STEP)

                    # Rolling step 2: replica 4 (new key) is READY, replica 2 is scaled down.
                    await hold_one_request(b_old)
                    double.services = service(
                        replica(2, "SHUTTING_DOWN", b_old, old_key, 1),
                        replica(3, "READY", a_new, new_key, 2),
                        replica(4, "READY", b_new, new_key, 2),
                        active=[2],
                    )
                    sync.run_once()
                    assert await gateway.reload()
                    assert gateway.routable_urls() == {a_new.urls[0], b_new.urls[0]}
                    await load.more(PER_STEP)
                    await load.until(lambda: b_new.replicas[0].telemetry.requests_completed > 0)
                    b_old_answered = await retire(b_old, gateway, load)
                    await load.more(PER_STEP)
                    load.stop()

    assert load.failures == []
    assert load.completed >= 5 * PER_STEP
    assert a_old_answered > 0
    assert b_old_answered > 0
    final = read_document(document)
    assert final is not None
    assert sorted((b.url, b.api_key_env) for b in final.backends) == sorted(
        [(a_new.urls[0], new_key), (b_new.urls[0], new_key)]
    )
    # The keys went from the gateway's environment to the replicas and nowhere else.
    for key in (OLD_KEY, NEW_KEY):
        assert key not in document.read_text()
        assert key.encode() not in gateway.log.getvalue()
        assert key not in repr(logs)
