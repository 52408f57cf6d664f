"""A wedged replica (SIGSTOPped: it accepts connections and never answers) and requests that
could be what kills a replica: the first-byte budget, outlier ejection, and the retry cap."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import openai
import pytest

from tests.routing.stack import MODEL, gateway_settings, running_gateway, sim_cluster
from tests.sim.ports import free_port_pair
from warmgate.proxy.routing.member import HealthState
from warmgate.proxy.settings import HealthSettings, UpstreamSettings

pytestmark = pytest.mark.anyio

# Small budgets so that the test runs in seconds: the simulator answers at once (time_scale 0).
FIRST_BYTE_S = 0.5
WEDGE_HEALTH = HealthSettings(
    interval_s=0.1, timeout_s=0.3, eject_after=2, readmit_after=2, slow_start_s=0
)


@contextmanager
def simulator_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """One `warmgate sim` replica as a process of its own, so that it can be stopped for real."""
    port = free_port_pair()
    command = [sys.executable, "-m", "warmgate.proxy.cli", "sim", "--port", str(port)]
    command += ["--replicas", "1", "--model", MODEL, "--time-scale", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # noqa: S603  # our own CLI
    try:
        assert process.stdout is not None
        url = f"http://127.0.0.1:{port}"
        for raw in process.stdout:  # one line per replica once its port listens
            if f"at {url}" in raw.decode():
                break
        else:
            raise RuntimeError("warmgate sim ended before listening")
        yield process, url
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.communicate(timeout=30)


async def test_a_stopped_replica_is_ejected_within_the_budget_and_no_client_sees_an_error(
    tmp_path: Path,
) -> None:
    upstream = UpstreamSettings(
        first_byte_timeout_s=FIRST_BYTE_S, answer_timeout_s=FIRST_BYTE_S, eject_after_timeouts=3
    )
    with simulator_process() as (victim_process, victim_url):
        async with sim_cluster(2) as cluster:
            urls = [victim_url, *cluster.urls]
            settings = gateway_settings(urls, tmp_path, policy="round_robin", health=WEDGE_HEALTH)
            settings = msgspec.structs.replace(settings, upstream=upstream)
            async with running_gateway(settings) as gateway:
                victim = next(m for m in gateway.pool.members() if m.backend.url == victim_url)
                await gateway.wait_for(lambda: victim.health is HealthState.HEALTHY)
                answers: list[float] = []
                errors: list[BaseException] = []
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()

                async def client_loop(worker: int) -> None:
                    turn = 0
                    while not stop.is_set():
                        turn += 1
                        started = loop.time()
                        try:
                            await ask(gateway.client, f"worker {worker} turn {turn}", turn % 2 == 0)
                            answers.append(loop.time() - started)
                        except openai.APIError as error:
                            errors.append(error)

                async with asyncio.TaskGroup() as group:
                    for worker in range(6):
                        group.create_task(client_loop(worker))
                    await gateway.wait_for(lambda: len(answers) >= 30)
                    os.kill(victim_process.pid, signal.SIGSTOP)
                    stopped_at = loop.time()
                    await gateway.wait_for(lambda: victim.health is HealthState.EJECTED, 20)
                    # three consecutive timeouts, each abandoned at the budget
                    assert loop.time() - stopped_at <= 3 * FIRST_BYTE_S + 1.0
                    answered = len(answers)
                    await gateway.wait_for(lambda: len(answers) >= answered + 60)
                    os.kill(victim_process.pid, signal.SIGCONT)
                    await gateway.wait_for(lambda: victim.health is HealthState.HEALTHY, 20)
                    stop.set()

                assert errors == []
                assert victim.ejections == 1
                # no client waited past one budget and one (quick) retry
                assert max(answers) < FIRST_BYTE_S + 2.0
                gateway.runtime.log.flush()
                assert b"backend_outlier_ejected" in gateway.log.getvalue()


async def ask(client: openai.AsyncOpenAI, text: str, stream: bool) -> None:
    """One chat completion, streamed or whole, that must come back with content."""
    if not stream:
        reply = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=4
        )
        assert reply.choices[0].message.content
        return
    chunks = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=4, stream=True
    )
    received = [chunk async for chunk in chunks]
    assert received
