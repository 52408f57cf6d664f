"""The servers behind the gateways: the canned upstream or simulated SGLang replicas."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.gateway import REPO_ROOT
from benchmarks.processes import ServerProcess


def canned_process(workdir: Path, *, port: int, model: str, cpus: str | None) -> ServerProcess:
    argv = [sys.executable, "-m", "benchmarks.canned_upstream", "--port", str(port)]
    argv += ["--model", model]
    return ServerProcess(
        "canned-upstream", argv, cpus=cpus, log_path=workdir / "canned.log", cwd=REPO_ROOT
    )


def sim_process(
    workdir: Path,
    *,
    port: int,
    replicas: int,
    model: str,
    time_scale: float,
    cpus: str | None,
    extra: Sequence[str] = (),
    name: str = "sim",
) -> ServerProcess:
    """`warmgate sim` serving `replicas` replicas on ports port..port+replicas-1."""
    argv = [sys.executable, "-m", "warmgate.proxy.cli", "sim", "--port", str(port)]
    argv += ["--replicas", str(replicas), "--model", model, "--time-scale", str(time_scale)]
    argv += ["--enable-cache-report", "--enable-metrics", *extra]
    return ServerProcess(name, argv, cpus=cpus, log_path=workdir / f"{name}.log", cwd=REPO_ROOT)


def replica_urls(port: int, replicas: int) -> list[str]:
    return [f"http://127.0.0.1:{port + i}" for i in range(replicas)]
