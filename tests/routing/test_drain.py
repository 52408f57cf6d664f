"""Draining, the shutdown hook the gateway's SIGTERM path calls: /ready turns 503, new requests
are refused in OpenAI's shape, and a stream in flight completes."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.routing.stack import MODEL, gateway_settings, running_gateway, sim_cluster

pytestmark = pytest.mark.anyio


async def test_a_draining_gateway_refuses_new_requests_and_finishes_its_streams(
    tmp_path: Path,
) -> None:
    async with (
        sim_cluster(2, time_scale=1.0) as cluster,
        running_gateway(gateway_settings(cluster.urls, tmp_path)) as gateway,
    ):
        pool = gateway.pool
        stream = await gateway.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "a story, slowly"}],
            max_tokens=40,
            stream=True,
        )
        chunks = aiter(stream)
        assert (await anext(chunks)).id
        assert pool.in_flight == 1

        pool.drain()
        async with httpx.AsyncClient(base_url=gateway.root) as http:
            ready = await http.get("/ready")
        assert ready.status_code == 503
        with pytest.raises(openai.APIStatusError) as refused:
            await gateway.client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
        assert refused.value.status_code == 503
        assert refused.value.code == "shutting_down"

        finish = None
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert finish in {"stop", "length"}
        assert await pool.wait_idle(5.0)
