"""A 128k-token request (about 500 kB): forwarded byte for byte, one body in memory, and its long
prefill trips neither a gateway timeout nor a health ejection."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path

import anyio
import httpx
import pytest

from tests.routing.stack import (
    API_KEY,
    MODEL,
    Tap,
    gateway_settings,
    running_gateway,
    sim_cluster,
)
from warmgate.proxy import wire
from warmgate.proxy.http import incoming
from warmgate.proxy.settings import HealthSettings
from warmgate.proxy.upstream import client

pytestmark = pytest.mark.anyio

PROMPT_TOKENS = 128_000


def long_body() -> bytes:
    # " abc" is one token for the simulator's tokenizer (and close to one for a real BPE)
    words = " ".join(f"w{i % 1000:03d}"[-3:] for i in range(PROMPT_TOKENS - 64))
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Summarize this:" + words}],
        "max_tokens": 8,
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def test_a_128k_token_request_passes_and_its_long_prefill_trips_no_timeout(
    tmp_path: Path,
) -> None:
    body = long_body()
    assert 450_000 < len(body) < 600_000
    # prefill at 20k tokens/s scaled by 0.25: about 1.6 s, while /health_generate probes run
    # every 0.1 s through the same simulated scheduler (timeout 2 s: a loaded test machine
    # must not turn a slow probe into an ejection; the busy-probe rule is unit-tested)
    health = HealthSettings(interval_s=0.1, timeout_s=2.0, eject_after=2)
    async with sim_cluster(1, time_scale=0.25) as cluster:
        settings = gateway_settings(cluster.urls, tmp_path, health=health)
        async with running_gateway(settings) as gateway:
            checker = gateway.pool.health
            assert checker is not None
            rounds_before = checker.rounds
            async with httpx.AsyncClient(base_url=gateway.base_url, timeout=120.0) as http:
                response = await http.post(
                    "/chat/completions",
                    content=body,
                    headers={
                        "Authorization": f"Bearer {API_KEY}",
                        "Content-Type": "application/json",
                    },
                )
            assert response.status_code == 200, response.text
            usage = response.json()["usage"]
            assert usage["prompt_tokens"] >= PROMPT_TOKENS - 64
            # the backend received exactly the client's bytes: nothing was re-encoded
            assert cluster.replicas[0].telemetry.last_request_body == body
            member = gateway.pool.members()[0]
            # a probe that arrived during the prefill answers on SGLang's next once-a-second
            # poll after the prefill's first token, so its round may end just after our answer
            with anyio.fail_after(10):
                while checker.rounds - rounds_before < 1:
                    await gateway.pool.next_change()
            assert member.ejections == 0
            assert member.errors == 0


def gateway_blocks(snapshot: tracemalloc.Snapshot, size: int) -> list[list[str]]:
    """Tracebacks (file:line, innermost last) of the gateway's allocations of at least `size`
    bytes: those made under the gateway's server stack, not the simulator's."""
    found = []
    for stat in snapshot.statistics("traceback"):
        if stat.size < size:
            continue
        frames = [f"{frame.filename}:{frame.lineno}" for frame in stat.traceback]
        if any("/uvicorn/" in frame for frame in frames) and not any(
            "/backends/sim/" in frame for frame in frames
        ):
            found.append(frames)
    return found


async def test_the_gateway_holds_a_large_body_once_while_the_request_is_in_flight(
    tmp_path: Path,
) -> None:
    body = long_body()
    async with sim_cluster(1) as cluster:
        replica = cluster.replicas[0]
        await replica.set_faults(hang_before_first_byte=True)
        tap = Tap(cluster.urls[0], threshold=len(body))
        async with (
            tap,
            running_gateway(gateway_settings([tap.url], tmp_path)) as gateway,
            httpx.AsyncClient(base_url=gateway.base_url, timeout=120.0) as http,
        ):
            tracemalloc.start(64)
            try:
                request = asyncio.create_task(
                    http.post(
                        "/chat/completions",
                        content=body,
                        headers={
                            "Authorization": f"Bearer {API_KEY}",
                            "Content-Type": "application/json",
                        },
                    )
                )
                # the whole body has gone through the tap and the simulator holds the answer:
                # the gateway is waiting on the backend with everything it keeps in memory
                async with asyncio.timeout(120):
                    await tap.reached.wait()
                snapshot = tracemalloc.take_snapshot()
            finally:
                tracemalloc.stop()
            await replica.set_faults(hang_before_first_byte=False)
            response = await request
            assert response.status_code == 200
    blocks = gateway_blocks(snapshot, len(body) * 9 // 10)
    # every route reads its body through the same reader, once the key has been checked
    receivers = (str(incoming.__file__), "litestar/connection/request.py")
    received = [b for b in blocks if any(r in b[-1] for r in receivers)]
    forwarding = [b for b in blocks if any(str(client.__file__) in f for f in b)]
    wire_folder = str(Path(str(wire.__file__)).parent)
    decoded = [b for b in blocks if any(f.startswith(wire_folder) for f in b)]
    # one copy of the bytes (as received, forwarded as is), no copy made to forward it; the
    # only other body-sized object is the prompt text that validation decoded
    assert len(received) == 1
    assert forwarding == []
    assert len(blocks) == len(received) + len(decoded) <= 2
