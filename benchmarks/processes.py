"""Server processes under test: started pinned to CPUs, probed until ready, measured, stopped.

CPU time and resident memory are read from /proc for the whole process tree (a peer may fork
workers), so a server's cost per request is known even when the load generator, not the server,
limits the requests per second.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    """A port free now, below Linux's ephemeral range (32768+), so that no outgoing connection
    (ours or another process's) takes it between this check and the server's bind."""
    for _ in range(200):
        port = _ports.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


_ports = random.Random()


def free_port_range(count: int) -> int:
    """A base port such that base..base+count-1 are all free now (for simulator replicas)."""
    for _ in range(50):
        base = free_port()
        socks: list[socket.socket] = []
        try:
            for offset in range(count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """`argv` under `taskset -c cpus` where taskset exists and CPUs were asked for."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *argv]
    return list(argv)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found += [int(child) for child in text.split()]
    return found


def process_tree(pid: int) -> list[int]:
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += _children(current)
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS_PER_S


def rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def http_ok(url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServerProcess:
    """One server under test; a context manager that always stops what it started."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str | None,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = pinned(argv, cpus)
        self.cpus = cpus
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(
        self,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        """Polls `url` until it answers 200 (a process coming up has no event to wait on)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; see {self.log_path}:\n{self.log_tail()}")
            if http_ok(url, body, headers):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s; see {self.log_path}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def tree(self) -> list[int]:
        return process_tree(self.pid) if self.alive() else []

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.tree())

    def rss_bytes(self) -> int:
        return rss_bytes(self.tree())

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # the group this object started
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def chat_probe(model: str) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "ready?"}], "max_tokens": 1}
    ).encode()
