"""`warmgate serve --workers 2`: one port, two processes, one gateway.

Each test runs the real command (`tests.support.served`) in front of simulated replicas and
reads what it prints: the banner, the `worker_started` events (with each worker's pid) and
one JSON line per request, which names the worker that served it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from tests.support.served import ServedGateway
from warmgate.backends.sim import SimCluster, SimConfig

REDIS_URL = "redis://127.0.0.1:6379/0"
MESSAGES: Any = [{"role": "user", "content": "Hello"}]
WORKERS = 2


def simulators(replicas: int, **config: Any) -> Iterator[Any]:
    """`replicas` simulators of model `demo` in a thread of their own, for a fixture's life."""
    cluster = SimCluster(SimConfig(model="demo", **config), replicas=replicas).start_in_thread()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    yield from simulators(2, time_scale=0.0, enable_cache_report=True)


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[Any]:
    """Real time (12 ms a token): a stream is still running when the edge is told to stop."""
    yield from simulators(1, time_scale=1.0, output_tokens_mean=2000)


def write_config(
    tmp_path: Path, backends: list[str], *, keys: str, redis: bool, policy: str = "round_robin"
) -> Path:
    lines = [
        'host = "127.0.0.1"',
        "port = 0",
        f'data_dir = "{tmp_path / "data"}"',
        "[server]",
        f"workers = {WORKERS}",
        "[health]",
        "interval_s = 3600.0",
        'probe_path = "/health"',
        "[routing]",
        "load_poll_interval_s = 0.0",
        f'policy = "{policy}"',
        "[ledger]",
        "flush_interval_ms = 20",
    ]
    if redis:
        lines += ["[limits]", f'redis_url = "{REDIS_URL}"']
    lines += ["[[models]]", 'name = "demo"', 'price_per_request = "0.002"']
    lines += [f'[[models.backends]]\nurl = "{url}"' for url in backends]
    config = tmp_path / "warmgate.toml"
    config.write_text("\n".join(lines) + "\n" + keys)
    return config


def key_block(name: str, *, rpm: int | None = None) -> str:
    block = f'[[keys]]\nname = "{name}"\nsecret_env = "WG_KEY_{name.upper()}"\n'
    return block + (f"rpm = {rpm}\n" if rpm is not None else "")


def ledger_rows(tmp_path: Path) -> list[tuple[str, int, float]]:
    with sqlite3.connect(tmp_path / "data" / "ledger.sqlite3") as db:
        rows: list[tuple[str, int, float]] = db.execute(
            "SELECT request_id, status, started_at FROM warmgate_ledger"
        ).fetchall()
    return rows


def request_lines(edge: ServedGateway) -> list[dict[str, Any]]:
    found = []
    for line in edge.output.splitlines():
        if line.startswith('{"event":"request"'):
            found.append(json.loads(line))
    return found


def worker_pids(edge: ServedGateway) -> dict[int, int]:
    pids = {}
    for line in edge.output.splitlines():
        if '"worker_started"' in line:
            event = json.loads(line)
            pids[event["worker"]] = event["pid"]
    return pids


def ask(base_url: str, secret: str) -> int:
    """One chat request on a connection of its own; the status it got."""
    with OpenAI(base_url=base_url, api_key=secret, max_retries=0) as client:
        try:
            client.chat.completions.create(model="demo", messages=MESSAGES, max_tokens=2)
        except openai.RateLimitError:
            return 429
    return 200


@pytest.mark.redis
def test_an_rpm_10_key_gets_exactly_10_answers_across_both_workers_and_one_row_each(
    tmp_path: Path, sim: Any
) -> None:
    name = f"w{secrets.token_hex(6)}"  # a fresh key id: Redis holds no count for it
    secret = "wg-" + secrets.token_urlsafe(32)
    config = write_config(tmp_path, list(sim.urls), keys=key_block(name, rpm=10), redis=True)
    edge = ServedGateway(config, environ={f"WG_KEY_{name.upper()}": secret})
    sent = 40
    try:
        assert sorted(worker_pids(edge)) == [0, 1]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: ask(edge.base_url, secret), range(sent)))
        lines = [line for line in request_lines_when(edge, sent) if line["key_id"] == f"key_{name}"]
    finally:
        status = edge.drain()
    assert status == 0
    # Both workers took part: the count is one across processes, not one per worker.
    assert {line["worker"] for line in lines} == {0, 1}
    rows = ledger_rows(tmp_path)
    assert len(rows) == sent
    assert len({request_id for request_id, _, _ in rows}) == sent
    assert sorted(status for _, status, _ in rows) == sorted(statuses)
    # The limit counts per UTC minute: 10 answers in each minute the requests fell in (one,
    # unless the run crossed a minute's end), every other request refused.
    minutes: dict[int, list[int]] = {}
    for _, answered, started_at in rows:
        minutes.setdefault(int(started_at // 60), []).append(answered)
    for answers in minutes.values():
        assert answers.count(200) == min(10, len(answers))


@pytest.fixture(scope="module")
def four_replicas() -> Iterator[Any]:
    """Replicas that report the prompt tokens their prefix cache held (as SGLang does)."""
    yield from simulators(4, time_scale=0.0, enable_cache_report=True)


def converse(base_url: str, secret: str, number: int, turns: int) -> list[tuple[int, int]]:
    """One conversation, each turn on a connection of its own (so either worker may take it):
    (prompt tokens, cached prompt tokens) per turn."""
    system = f"Conversation {number}. " + "You answer briefly and precisely. " * 12
    messages: Any = [{"role": "system", "content": system}]
    usage = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Question {turn} of conversation {number}"})
        with OpenAI(base_url=base_url, api_key=secret, max_retries=0) as client:
            reply = client.chat.completions.create(model="demo", messages=messages, max_tokens=8)
        assert reply.usage is not None
        assert reply.usage.prompt_tokens_details is not None
        cached = reply.usage.prompt_tokens_details.cached_tokens or 0
        usage.append((reply.usage.prompt_tokens, cached))
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    return usage


def test_both_workers_send_each_conversation_to_one_replica_and_reuse_its_cache(
    tmp_path: Path, four_replicas: Any
) -> None:
    """Affinity without shared state: the workers of an edge (and the edges of a fleet) rank
    the replicas for a conversation alike, so a turn finds its prefix cached wherever it
    lands."""
    config = write_config(
        tmp_path,
        list(four_replicas.urls),
        keys=key_block("chat"),
        redis=False,
        policy="cache_aware",
    )
    secret = "wg-" + secrets.token_urlsafe(32)
    edge = ServedGateway(config, environ={"WG_KEY_CHAT": secret})
    conversations, turns = 8, 4
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=conversations) as pool:
            usages = list(
                pool.map(lambda n: converse(edge.base_url, secret, n, turns), range(conversations))
            )
        lines = request_lines_when(edge, conversations * turns)
    finally:
        status = edge.drain()
    assert status == 0
    assert {line["worker"] for line in lines} == {0, 1}
    follow_ups = [turn for usage in usages for turn in usage[1:]]
    assert len(follow_ups) == conversations * (turns - 1)
    # Every follow-up found at least half of its prompt in the replica's cache: the earlier
    # turns went to the same replica, whichever worker routed them.
    assert all(cached >= prompt / 2 for prompt, cached in follow_ups), follow_ups
    assert len({line["backend"] for line in lines}) > 1  # conversations spread over replicas


def request_lines_when(edge: ServedGateway, count: int) -> list[dict[str, Any]]:
    """The request lines, once `count` of them have been written (workers flush on a timer)."""
    edge.wait_for(lambda _: len(request_lines(edge)) >= count)
    return request_lines(edge)


def test_metrics_report_the_whole_edge_whichever_worker_answers_the_scrape(
    tmp_path: Path, sim: Any
) -> None:
    secret = "wg-" + secrets.token_urlsafe(32)
    config = write_config(tmp_path, list(sim.urls), keys=key_block("metrics"), redis=False)
    edge = ServedGateway(config, environ={"WG_KEY_METRICS": secret})
    sent = 24
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda _: ask(edge.base_url, secret), range(sent)))
        served_by = {line["worker"] for line in request_lines_when(edge, sent)}
        scrapes = [httpx.get(edge.root + "/metrics").text for _ in range(6)]
    finally:
        edge.stop()
    assert statuses == [200] * sent
    assert served_by == {0, 1}
    for text in scrapes:
        families = {f.name: f for f in text_string_to_metric_families(text)}
        requests = families["warmgate_model_requests"].samples
        assert [(s.labels, s.value) for s in requests] == [
            ({"model": "demo", "status": "200"}, sent)
        ]
        billed = families["warmgate_model_billed_requests"].samples
        assert [s.value for s in billed] == [sent]
        assert families["warmgate_edge_workers_scraped"].samples[0].value == WORKERS
        rss = families["process_resident_memory_bytes"].samples
        assert sorted(s.labels["worker"] for s in rss) == ["0", "1"]


def every_worker_busy(edge: ServedGateway) -> bool:
    """Each worker has a request in flight (its outstanding-requests gauge, per worker)."""
    text = httpx.get(edge.root + "/metrics").text
    busy = {
        sample.labels["worker"]
        for family in text_string_to_metric_families(text)
        if family.name == "warmgate_backend_outstanding_requests"
        for sample in family.samples
        if sample.value > 0
    }
    return busy == {"0", "1"}


def test_sigterm_drains_streams_on_every_worker_and_exits_0(tmp_path: Path, slow_sim: Any) -> None:
    secret = "wg-" + secrets.token_urlsafe(32)
    config = write_config(tmp_path, list(slow_sim.urls), keys=key_block("drain"), redis=False)
    edge = ServedGateway(config, environ={"WG_KEY_DRAIN": secret})
    clients: list[OpenAI] = []
    streams: list[Any] = []
    try:
        # Streams, each on a connection of its own, until each worker holds at least one
        # (the kernel hands connections to whichever worker accepts first).
        while len(streams) < 20 and not every_worker_busy(edge):
            client = OpenAI(base_url=edge.base_url, api_key=secret, max_retries=0)
            clients.append(client)
            stream = client.chat.completions.create(
                model="demo", messages=MESSAGES, max_tokens=40, stream=True
            )
            streams.append(stream)
            next(iter(stream))  # generating: its first chunk arrived
        edge.signal(signal.SIGTERM)
        edge.wait_for(lambda line: '"gateway_draining"' in line)
        texts = [
            "".join(
                chunk.choices[0].delta.content or ""
                for chunk in stream
                if chunk.choices and chunk.choices[0].delta
            )
            for stream in streams
        ]
        status = edge.wait()
    finally:
        for client in clients:
            client.close()
        edge.stop()
    assert status == 0
    assert all(texts)
    lines = request_lines(edge)
    assert len(lines) == len(streams)
    assert all(line["status"] == 200 and not line["cancelled"] for line in lines)
    assert {line["worker"] for line in lines} == {0, 1}
    assert sum('"gateway_stopped"' in line for line in edge.output.splitlines()) == WORKERS


def test_a_worker_that_dies_is_restarted_and_the_edge_keeps_serving(
    tmp_path: Path, sim: Any
) -> None:
    secret = "wg-" + secrets.token_urlsafe(32)
    config = write_config(tmp_path, list(sim.urls), keys=key_block("crash"), redis=False)
    edge = ServedGateway(config, environ={"WG_KEY_CRASH": secret})
    try:
        first = worker_pids(edge)
        os.kill(first[1], signal.SIGKILL)
        edge.wait_for(lambda line: '"worker_restarted"' in line)
        restarted = edge.wait_for(
            lambda line: (
                '"worker_started"' in line and json.loads(line)["pid"] not in first.values()
            )
        )
        assert json.loads(restarted)["worker"] == 1
        assert [ask(edge.base_url, secret) for _ in range(6)] == [200] * 6
        edge.signal(signal.SIGTERM)
        status = edge.wait()
    finally:
        edge.stop()
    assert status == 0


def test_embedded_defaults_serve_with_two_workers_and_one_simulator(tmp_path: Path) -> None:
    edge = ServedGateway(
        None,
        environ={},
        args=["--workers", "2", "--port", "0", "--data-dir", str(tmp_path / "data")],
    )
    try:
        secret = (tmp_path / "data" / "api-key").read_text().strip()
        assert [ask(edge.base_url, secret) for _ in range(4)] == [200] * 4
        assert sorted(worker_pids(edge)) == [0, 1]
        edge.signal(signal.SIGTERM)
        status = edge.wait()
    finally:
        edge.stop()
    assert status == 0
    # One simulator, in the parent: every worker's requests reached the same replica.
    backends = {line["backend"] for line in request_lines(edge)}
    assert len(backends) == 1
    # Without Redis each worker counts its own requests, and the edge says so.
    assert '"limits_per_worker"' in edge.output


def test_workers_whose_parent_is_killed_drain_and_stop_by_themselves(
    tmp_path: Path, sim: Any
) -> None:
    secret = "wg-" + secrets.token_urlsafe(32)
    config = write_config(tmp_path, list(sim.urls), keys=key_block("orphan"), redis=False)
    edge = ServedGateway(config, environ={"WG_KEY_ORPHAN": secret})
    try:
        assert ask(edge.base_url, secret) == 200
        os.kill(edge.pid, signal.SIGKILL)
        # The workers hold the same stdout: each says it stopped, then the output ends.
        edge.wait_for(lambda _: edge.output.count('"gateway_stopped"') == WORKERS, timeout_s=30)
    finally:
        edge.stop()
    assert edge.output.count('"gateway_draining"') == WORKERS


def test_a_store_that_cannot_be_reached_stops_the_edge_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "warmgate.toml"
    config.write_text(
        f'port = 0\ndata_dir = "{tmp_path}"\n[server]\nworkers = 2\n'
        '[ledger]\nurl = "postgresql://nobody@127.0.0.1:9/none"\n'
        '[[models]]\nname = "demo"\n[[models.backends]]\nurl = "http://127.0.0.1:9"\n'
    )
    command = [sys.executable, "-m", "warmgate.proxy.cli", "serve", "--config", str(config)]
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        command, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("warmgate serve: cannot start:")
    assert "Traceback" not in done.stdout + done.stderr
