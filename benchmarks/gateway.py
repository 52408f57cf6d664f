"""Warmgate as a benchmark target: a TOML config for `warmgate serve` and the process that runs it.

"Every feature on" means what a production edge does per request: key authentication, per-key
limits (checked and counted, set high enough never to refuse), the ledger (SQLite, batched),
routing with health probes, and the one JSON log line per request (written to a file). "Off"
turns keys, limits and the ledger off, for the cost of those three alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.processes import ServerProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
# A throwaway key for a gateway that listens on loopback only during a benchmark.
BENCH_KEY = "wg-bench-0123456789abcdef0123456789abcdef"
BENCH_KEY_ENV = "WARMGATE_BENCH_KEY"
BACKEND_KEY_ENV = "WARMGATE_BENCH_BACKEND_KEY"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_text(
    *,
    port: int,
    data_dir: Path,
    model: str,
    backends: Sequence[str],
    features: bool = True,
    policy: str = "cache_aware",
    served_name: str | None = None,
    backend_key: bool = False,
    region: str | None = None,
    backend_regions: Sequence[str | None] = (),
    ledger_url: str | None = None,
) -> str:
    lines = [
        'host = "127.0.0.1"',
        f"port = {port}",
        f"data_dir = {_quote(str(data_dir))}",
        "",
    ]
    if region is not None:
        lines += ["[server]", f"region = {_quote(region)}", ""]
    if ledger_url is not None:
        lines += ["[ledger]", f"url = {_quote(ledger_url)}", ""]
    lines += [
        "[[models]]",
        f"name = {_quote(model)}",
        'price_per_request = "0.001"',
        f"policy = {_quote(policy)}",
    ]
    if served_name:
        lines.append(f"served_name = {_quote(served_name)}")
    regions = list(backend_regions) or [None] * len(backends)
    for url, backend_region in zip(backends, regions, strict=True):
        lines += ["", "[[models.backends]]", f"url = {_quote(url)}"]
        if backend_region is not None:
            lines.append(f"region = {_quote(backend_region)}")
        if backend_key:
            lines.append(f"api_key_env = {_quote(BACKEND_KEY_ENV)}")
    # The key stays declared when features are off, so a build that ignores a switch still
    # answers; the benchmark checks which switches took effect and says so.
    lines += [
        "",
        "[[keys]]",
        'name = "bench"',
        f"secret_env = {_quote(BENCH_KEY_ENV)}",
        "rpm = 1000000000",
        "max_concurrency = 1000000",
    ]
    if not features:
        lines += ["", "[auth]", "enabled = false", "", "[limits]", "enabled = false"]
        lines += ["", "[ledger]", "enabled = false"]
    return "\n".join(lines) + "\n"


def warmgate_process(
    name: str,
    workdir: Path,
    *,
    port: int,
    model: str,
    backends: Sequence[str],
    cpus: str | None,
    features: bool = True,
    policy: str = "cache_aware",
    served_name: str | None = None,
    backend_key: str | None = None,
    region: str | None = None,
    backend_regions: Sequence[str | None] = (),
    ledger_url: str | None = None,
    executable: str | None = None,
) -> ServerProcess:
    """A `warmgate serve --config` process (not started) with its own config and data dir; with
    `executable`, another build's `warmgate` command serves it instead of this checkout."""
    config = workdir / f"{name}.toml"
    config.write_text(
        config_text(
            port=port,
            data_dir=workdir / f"{name}-data",
            model=model,
            backends=backends,
            features=features,
            policy=policy,
            served_name=served_name,
            backend_key=backend_key is not None,
            region=region,
            backend_regions=backend_regions,
            ledger_url=ledger_url,
        )
    )
    env = {BENCH_KEY_ENV: BENCH_KEY}
    if backend_key is not None:
        env[BACKEND_KEY_ENV] = backend_key
    command = [executable] if executable else [sys.executable, "-m", "warmgate.proxy.cli"]
    argv = [*command, "serve", "--config", str(config)]
    return ServerProcess(
        name, argv, cpus=cpus, log_path=workdir / f"{name}.log", env=env, cwd=REPO_ROOT
    )
