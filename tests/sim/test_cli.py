"""`warmgate sim` as a process: N replicas on consecutive ports, SIGTERM drains then exits."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.sim.ports import free_port_pair


def read_until(process: subprocess.Popen[bytes], marker: str, deadline_s: float = 60.0) -> str:
    """Read the simulator's stdout up to the first line holding `marker`. A watchdog kills a
    process that says nothing in time, which ends the read with EOF instead of a hang."""
    assert process.stdout is not None
    watchdog = threading.Timer(deadline_s, process.kill)
    watchdog.start()
    try:
        for raw in process.stdout:
            line = raw.decode()
            if marker in line:
                return line
    finally:
        watchdog.cancel()
    _, stderr = process.communicate()
    raise RuntimeError(f"warmgate sim ended before {marker!r}: {stderr.decode()[-2000:]}")


@pytest.fixture
def simulator() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port_pair()
    command = [
        sys.executable,
        "-m",
        "warmgate.proxy.cli",
        "sim",
        "--port",
        str(port),
        "--replicas",
        "2",
        "--model",
        "demo",
        "--time-scale",
        "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603 - our own CLI
    try:
        # It prints one line per replica once that replica's port listens.
        read_until(process, f"at http://127.0.0.1:{port}\n")
        read_until(process, f"at http://127.0.0.1:{port + 1}\n")
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_replicas_have_their_own_queues_and_sigterm_drains_before_exit(
    simulator: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = simulator
    first, second = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": "go"}],
        "max_tokens": 300,  # about 4 s: the drain outlasts the checks
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.Client(timeout=30.0) as client:
        with client.stream("POST", first + "/v1/chat/completions", json=body) as reply:
            lines = reply.iter_lines()
            assert next(lines).startswith("data: ")
            loads = client.get(second + "/v1/loads").json()["loads"][0]
            assert loads["num_running_reqs"] == 0
            process.send_signal(signal.SIGTERM)
            read_until(process, "draining")
            assert client.get(first + "/health").status_code == 503
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert '"finish_reason":"length"' in rest[-2]
    assert process.wait(timeout=30) == 0
