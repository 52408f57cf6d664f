"""SimCluster used from synchronous code: its own event loop in a daemon thread."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.sim.ports import free_port_pair
from warmgate.backends.sim import SimCluster, SimConfig


def test_a_threaded_cluster_serves_replicas_and_takes_faults_from_the_caller_thread() -> None:
    cluster = SimCluster(SimConfig(model="demo", time_scale=0.0), replicas=2).start_in_thread()
    try:
        assert len(set(cluster.urls)) == 2
        with httpx.Client(timeout=10) as client:
            for url in cluster.urls:
                assert client.get(url + "/v1/models").json()["data"][0]["id"] == "demo"
            faults = cluster.set_faults_from_thread(1, refuse_connections=True)
            assert faults.refuse_connections
        with httpx.Client(timeout=10) as fresh:
            assert fresh.get(cluster.urls[0] + "/health").status_code == 200
            with pytest.raises(httpx.ConnectError):
                fresh.get(cluster.urls[1] + "/health")
            cluster.set_faults_from_thread(1, refuse_connections=False)
            assert fresh.get(cluster.urls[1] + "/health").status_code == 200
    finally:
        cluster.stop()


def test_replicas_on_consecutive_ports_from_a_given_port() -> None:
    base = free_port_pair()
    cluster = SimCluster(SimConfig(model="demo", time_scale=0.0), replicas=2, port=base)
    cluster.start_in_thread()
    try:
        assert cluster.urls == [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"]
    finally:
        cluster.stop()


@pytest.mark.anyio
async def test_a_port_in_use_fails_the_start_and_leaves_nothing_running() -> None:
    base = free_port_pair()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        cluster = SimCluster(SimConfig(model="demo", time_scale=0.0), replicas=2, port=base)
        with pytest.raises(OSError, match="in use"):
            await cluster.start()
    with socket.socket() as again:
        again.bind(("127.0.0.1", base))  # the first replica's socket was closed
