"""SIGTERM on a real `warmgate serve` process: it stops being ready and refuses new requests at
once, lets the stream in flight finish, flushes the ledger and exits with status 0."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.ledger import stored_rows
from tests.support.served import ServedGateway
from warmgate.backends.sim import SimCluster, SimConfig

KEY = "wg-shutdown-" + "t" * 40
DEADLINE_S = 30.0
USER: Any = [{"role": "user", "content": "Tell me a story"}]


@pytest.fixture
def sim() -> Iterator[Any]:
    cluster = SimCluster(
        SimConfig(model="demo", time_scale=0.0, output_tokens_mean=12), replicas=1
    ).start_in_thread()
    yield cluster
    cluster.stop()


def serve(tmp_path: Path, backend_url: str, *, drain_timeout_s: float) -> ServedGateway:
    config = tmp_path / "warmgate.toml"
    config.write_text(
        f"""
host = "127.0.0.1"
port = 0
data_dir = "{tmp_path}"

[server]
drain_timeout_s = {drain_timeout_s}

[health]
interval_s = 3600
probe_path = "/health"

[routing]
load_poll_interval_s = 0

[[keys]]
name = "shutdown"
secret_env = "WG_SHUTDOWN_KEY"

[[models]]
name = "demo"
price_per_request = "0.002"
[[models.backends]]
url = "{backend_url}"
""",
        encoding="utf-8",
    )
    return ServedGateway(config, environ={"WG_SHUTDOWN_KEY": KEY})


def wait_until_held(sim: Any) -> None:
    """The gateway is another process: poll the replica until the request is held there."""
    deadline = time.monotonic() + DEADLINE_S
    while sim.replicas[0].held != 1:
        assert time.monotonic() < deadline, "the stream never reached the replica"


class HeldStream:
    """A streamed chat completion read in a thread: the replica holds it before its first byte
    until the test releases it."""

    def __init__(self, base_url: str) -> None:
        self.chunks: list[Any] = []
        self.error: Exception | None = None
        self.done = threading.Event()
        self._client = OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=60)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            stream = self._client.chat.completions.create(
                model="demo", messages=USER, max_tokens=8, stream=True
            )
            self.chunks.extend(stream)
        except openai.APIError as error:
            self.error = error
        finally:
            self.done.set()
            self._client.close()

    def wait(self) -> None:
        assert self.done.wait(DEADLINE_S), "the stream never ended"


def test_sigterm_turns_ready_to_503_refuses_new_requests_finishes_the_stream_and_exits_0(
    tmp_path: Path, sim: Any
) -> None:
    gateway = serve(tmp_path, sim.urls[0], drain_timeout_s=60)
    try:
        root = gateway.base_url.removesuffix("/v1")
        assert httpx.get(root + "/ready", timeout=10).status_code == 200
        sim.set_faults_from_thread(0, hang_before_first_byte=True)
        held = HeldStream(gateway.base_url)
        wait_until_held(sim)

        gateway.signal(signal.SIGTERM)
        gateway.wait_for(lambda line: '"event":"gateway_draining"' in line)

        ready = httpx.get(root + "/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "shutting_down"
        with (
            OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0) as client,
            pytest.raises(openai.APIStatusError) as refused,
        ):
            client.chat.completions.create(model="demo", messages=USER, max_tokens=2)
        assert refused.value.status_code == 503
        assert refused.value.code == "shutting_down"
        assert not held.done.is_set()  # the stream is still in flight, and the process alive
        assert gateway.running

        sim.set_faults_from_thread(0, hang_before_first_byte=False)
        held.wait()
        assert held.error is None
        assert held.chunks[-1].choices[0].finish_reason in {"stop", "length"}

        assert gateway.wait(DEADLINE_S) == 0
    finally:
        sim.set_faults_from_thread(0, hang_before_first_byte=False)
        gateway.stop()
    assert '"event":"gateway_stopped"' in gateway.output
    rows = asyncio.run(stored_rows(f"sqlite:///{tmp_path / 'ledger.sqlite3'}"))
    streamed = [row for row in rows if row.stream]
    assert len(streamed) == 1
    assert streamed[0].billed
    assert streamed[0].completion_tokens > 0
    refusals = [row for row in rows if row.status == 503]
    assert [row.error_code for row in refusals] == ["shutting_down"]


def test_a_stream_still_held_when_the_drain_timeout_ends_does_not_keep_the_process_alive(
    tmp_path: Path, sim: Any
) -> None:
    gateway = serve(tmp_path, sim.urls[0], drain_timeout_s=0.2)
    try:
        sim.set_faults_from_thread(0, hang_before_first_byte=True)
        held = HeldStream(gateway.base_url)
        wait_until_held(sim)
        gateway.signal(signal.SIGTERM)
        gateway.wait_for(lambda line: '"event":"gateway_drain_timeout"' in line)
        assert gateway.wait(DEADLINE_S) == 0
        held.wait()
    finally:
        sim.set_faults_from_thread(0, hang_before_first_byte=False)
        gateway.stop()
    # Cut at the drain timeout, the request ends through the gateway's own error path: an
    # OpenAI error the SDK can retry elsewhere (not a hang, not the server's bare 500), and a
    # row that says what the client got.
    assert isinstance(held.error, openai.APIStatusError)
    assert held.error.status_code in {502, 503}
    assert held.error.code in {"shutting_down", "backend_error", "backend_unreachable"}
    assert '"event":"gateway_stopped"' in gateway.output
    assert "Traceback" not in gateway.output
    rows = asyncio.run(stored_rows(f"sqlite:///{tmp_path / 'ledger.sqlite3'}"))
    assert [(row.status, row.error_code, row.billed) for row in rows] == [
        (held.error.status_code, held.error.code, False)
    ]
