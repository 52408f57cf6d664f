"""`warmgate sim` as a process: N replicas on consecutive ports, SIGTERM drains then exits."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.sim.ports import free_port_pair


def wait_until_up(url: str, process: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    """The simulator is another process: poll until its port accepts, with a deadline."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            httpx.get(url + "/v1/models", timeout=1.0)
            return
        except httpx.TransportError:
            if process.poll() is not None:
                _, stderr = process.communicate()
                raise RuntimeError(f"warmgate sim exited: {stderr.decode()[-2000:]}") from None
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


@pytest.fixture
def simulator() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port_pair()
    command = [
        sys.executable,
        "-m",
        "proxy.cli",
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
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603 - our own CLI
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process)
        wait_until_up(f"http://127.0.0.1:{port + 1}", process)
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
            deadline = time.monotonic() + 10
            while client.get(first + "/health").status_code != 503:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert '"finish_reason":"length"' in rest[-2]
    assert process.wait(timeout=30) == 0
