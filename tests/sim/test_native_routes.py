"""SGLang's native routes: /generate, /flush_cache, /model_info, /server_info, /v1/loads,
and the server's connection behaviour (idle keep-alive connections are closed)."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from warmgate.backends.sim import SimCluster, SimConfig

pytestmark = pytest.mark.anyio


async def test_generate_answers_text_and_meta_info(http: httpx.AsyncClient) -> None:
    body = {
        "text": "The capital city of France is",
        "rid": "r1",
        "sampling_params": {"max_new_tokens": 8, "ignore_eos": True},
    }
    reply = (await http.post("/generate", json=body)).json()
    meta = reply["meta_info"]
    assert meta["id"] == "r1"
    assert meta["finish_reason"] == {"type": "length", "length": 8}
    assert meta["completion_tokens"] == 8
    assert meta["prompt_tokens"] == 8  # BOS + 7 tokens
    assert len(reply["text"].split()) == 8


async def test_generate_stream_sends_cumulative_text(http: httpx.AsyncClient) -> None:
    body = {
        "text": "Hello",
        "stream": True,
        "sampling_params": {"max_new_tokens": 3, "ignore_eos": True},
    }
    raw = (await http.post("/generate", json=body)).text
    events = [line.removeprefix("data: ") for line in raw.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    texts = [json.loads(event)["text"] for event in events[:-1]]
    assert len(texts) == 3
    assert texts[1].startswith(texts[0])
    assert texts[2].startswith(texts[1])


async def test_flush_cache_empties_the_prefix_cache(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    prompt = {"model": "demo", "prompt": " word" * 100, "max_tokens": 1}
    await http.post("/v1/completions", json=prompt)
    assert cluster.replicas[0].scheduler.cache.tokens > 0
    flushed = await http.post("/flush_cache")
    assert flushed.status_code == 200
    assert flushed.text.startswith("Cache flushed.")
    assert cluster.replicas[0].scheduler.cache.tokens == 0
    again = (await http.post("/v1/completions", json=prompt)).json()
    assert again["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


async def test_model_and_server_info_and_their_deprecated_names(http: httpx.AsyncClient) -> None:
    info = (await http.get("/model_info")).json()
    assert info["model_path"] == "demo"
    assert info["is_generation"] is True
    assert (await http.get("/get_model_info")).json() == info
    server = (await http.get("/server_info")).json()
    assert server["context_length"] == 131072
    assert server["max_total_num_tokens"] == 1_270_000
    assert server["version"] == "0.5.23"
    assert (await http.get("/get_server_info")).json()["tp_size"] == server["tp_size"]


async def test_loads_validates_sections_and_offers_prometheus(http: httpx.AsyncClient) -> None:
    core = (await http.get("/v1/loads", params={"include": "core"})).json()["loads"][0]
    assert {"num_running_reqs", "num_waiting_reqs", "token_usage", "cache_hit_rate"} <= set(core)
    assert "queues" not in core
    bad = await http.get("/v1/loads", params={"include": "bogus"})
    assert bad.status_code == 400
    assert bad.json()["object"] == "error"
    text = (await http.get("/v1/loads", params={"format": "prometheus"})).text
    assert 'sglang_num_running_reqs{dp_rank="0"} 0' in text


async def test_an_unknown_path_gets_fastapis_404_body(http: httpx.AsyncClient) -> None:
    reply = await http.get("/no/such/route")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "Not Found"}


class TestKeepAlive:
    @pytest.fixture
    def sim_config(self) -> SimConfig:
        return SimConfig(model="demo", time_scale=0.0, keep_alive_s=0.2)

    async def test_an_idle_keep_alive_connection_is_closed_by_the_server(
        self, cluster: SimCluster
    ) -> None:
        host, port = cluster.replicas[0].host, cluster.replicas[0].port
        async with await anyio.connect_tcp(host, port) as stream:
            await stream.send(b"GET /health HTTP/1.1\r\nHost: sim\r\n\r\n")
            received = b""
            with anyio.fail_after(10):
                while b"\r\n\r\n" not in received:
                    received += await stream.receive()
                assert received.startswith(b"HTTP/1.1 200")

                async def read_until_closed() -> None:
                    while True:
                        await stream.receive()

                with pytest.raises(anyio.EndOfStream):  # the server closed the idle connection
                    await read_until_closed()


async def test_health_generate_runs_through_the_scheduler_and_waits_behind_it(
    cluster: SimCluster, http: httpx.AsyncClient
) -> None:
    scheduler = cluster.replicas[0].scheduler
    await http.post("/pause_generation")
    statuses: list[int] = []

    async def probe() -> None:
        statuses.append((await http.get("/health_generate")).status_code)

    async with anyio.create_task_group() as group:
        group.start_soon(probe)
        with anyio.fail_after(5):
            await scheduler.wait_until(lambda s: s.num_waiting == 1)
        assert statuses == []
        assert (await http.get("/ready")).status_code == 503  # paused
        await http.post("/continue_generation")
    assert statuses == [200]
    stats = (await http.get("/_sim/stats")).json()
    assert stats["requests_completed"] == 0  # probes are not counted as requests
