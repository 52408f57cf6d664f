"""Streams that break: a backend that cuts a stream, and clients that go away.

A cut stream must never pass for a short answer: the client gets an error event the SDKs raise
on. A client that leaves must free the GPU: the gateway closes the upstream request and the
simulator counts the abort.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.gateway.conftest import AUTH_HEADER, ENVIRON, KEY, SimStats, sim_config
from tests.support.gateway import GatewayServer
from warmgate.backends.sim import SimCluster
from warmgate.proxy.settings import parse_settings

USER: list[Any] = [{"role": "user", "content": "Tell me a long story."}]
DEADLINE_S = 10.0


def wait_until(condition: Callable[[], bool], *, what: str) -> float:
    """Poll a condition in another thread's server until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > DEADLINE_S:
            pytest.fail(f"{what}: not within {DEADLINE_S} s")
    return time.monotonic() - started


def aborted(sim_stats: SimStats, sim: Any) -> int:
    return sum(sim_stats(url)["requests_aborted"] for url in sim.urls)


def raw_request(gateway: GatewayServer, body: dict[str, Any]) -> socket.socket:
    """A POST written on a plain socket, so the test decides when the connection closes."""
    host, port = gateway.sock.getsockname()[:2]
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"{AUTH_HEADER}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    connection = socket.create_connection((host, port))
    connection.sendall(head + payload)
    return connection


def test_a_stream_the_backend_cuts_ends_with_an_error_the_sdk_raises(
    client: OpenAI, fragile: Any
) -> None:
    for index in range(len(fragile.replicas)):
        fragile.set_faults_from_thread(index, cut_stream_after_tokens=3)
    stream = client.chat.completions.create(
        model="fragile", messages=USER, max_tokens=50, stream=True
    )
    received_text: list[str] = []

    def read_all() -> None:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received_text.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError) as raised:
        read_all()
    assert "broke off" in raised.value.message
    assert 1 <= len(received_text) <= 3


def test_a_cut_stream_is_a_200_whose_last_events_are_an_openai_error_and_done(
    gateway: GatewayServer, http: httpx.Client, fragile: Any
) -> None:
    for index in range(len(fragile.replicas)):
        fragile.set_faults_from_thread(index, cut_stream_after_tokens=2)
    answer = http.post(
        "/v1/chat/completions",
        json={"model": "fragile", "messages": USER, "max_tokens": 50, "stream": True},
        headers={"Authorization": AUTH_HEADER.split(": ", 1)[1]},
    )
    assert answer.status_code == 200
    events = answer.text.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    error = json.loads(events[-3].removeprefix("data: "))
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert error["error"]["code"] == "stream_interrupted"


def test_a_client_leaving_mid_stream_aborts_the_backend_request(
    gateway: GatewayServer, fragile: Any, sim_stats: SimStats
) -> None:
    before = aborted(sim_stats, fragile)
    connection = raw_request(
        gateway,
        {
            "model": "fragile",
            "messages": USER,
            "max_tokens": 4000,
            "ignore_eos": True,  # SGLang's: all 4000 tokens (48 s in real time)
            "stream": True,
        },
    )
    seen = b""
    while seen.count(b"data: ") < 3:  # headers and a few tokens have arrived
        seen += connection.recv(65536)
    assert seen.startswith(b"HTTP/1.1 200")
    connection.close()
    took_s = wait_until(
        lambda: aborted(sim_stats, fragile) > before, what="the backend saw the abort"
    )
    print(f"backend abort seen {took_s * 1000:.1f} ms after the client closed (polling included)")


def test_a_client_leaving_before_the_first_byte_cancels_the_upstream_request(
    gateway: GatewayServer, fragile: Any
) -> None:
    """While the backend holds its answer (prefill; here a hang that only a closed connection
    ends), a client that leaves makes the gateway close the upstream connection at once."""
    for index in range(len(fragile.replicas)):
        fragile.set_faults_from_thread(index, hang_before_first_byte=True)

    def held() -> int:
        return sum(replica.held for replica in fragile.replicas)

    connection = raw_request(
        gateway,
        {
            "model": "fragile",
            "messages": USER,
            "max_tokens": 4000,
            "ignore_eos": True,  # SGLang's: all 4000 tokens (48 s in real time)
            "stream": True,
        },
    )
    wait_until(lambda: held() == 1, what="the request reached a replica and is held there")
    connection.close()
    took_s = wait_until(lambda: held() == 0, what="the backend saw its connection closed")
    assert gateway.runtime.pool.in_flight == 0
    print(f"upstream closed {took_s * 1000:.1f} ms after the client closed (polling included)")


@pytest.fixture
def one_slot_gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    """A gateway in front of one replica that runs one request and queues none."""
    cluster = SimCluster(
        sim_config("demo", time_scale=1.0, max_running_requests=1, max_queued_requests=0),
        replicas=1,
    ).start_in_thread()
    settings = parse_settings(
        {
            "data_dir": str(tmp_path),
            "health": {"interval_s": 3600, "probe_path": "/health"},
            "routing": {"load_poll_interval_s": 0},
            "models": [{"name": "demo", "backends": [{"url": cluster.urls[0]}]}],
            "keys": [{"name": "tester", "secret_env": "WG_TEST_KEY"}],
        }
    )
    server = GatewayServer(settings, environ=ENVIRON).start()
    yield server
    server.stop()
    cluster.stop()


def test_an_in_band_backend_error_reaches_the_sdk_as_an_error_it_raises(
    one_slot_gateway: GatewayServer,
) -> None:
    """SGLang answers a stream it cannot queue with HTTP 200 and an error event; the client
    gets that error in OpenAI's shape, which the SDK raises."""
    busy = raw_request(
        one_slot_gateway,
        {"model": "demo", "messages": USER, "max_tokens": 4000, "ignore_eos": True, "stream": True},
    )
    seen = b""
    while b"data: " not in seen:  # the one slot is taken
        seen += busy.recv(65536)
    with OpenAI(base_url=one_slot_gateway.base_url, api_key=KEY, max_retries=0) as sdk:
        stream = sdk.chat.completions.create(model="demo", messages=USER, stream=True)
        with pytest.raises(openai.APIError) as raised:
            list(stream)
    assert "queue is full" in raised.value.message
    busy.close()
