"""What recording one request's metrics costs: the gateway's own renderer against
prometheus-client, in one process and in its multiprocess mode (the way it serves several
workers: every observation written to a memory-mapped file).

One "request" records what the relay records for a finished, billed, streamed request: the
backend's outcome, time to first token, ten inter-token gaps, the gateway's overhead, and the
accounting (status, three token counts, billing and revenue per model and per key). Measured as
CPU time per request over many requests, best of a few rounds; scraping is not timed (it is
not on the request path).

    python -m benchmarks.metrics_cost            # ~30 s
    python -m benchmarks.metrics_cost --quick    # ~5 s

Writes benchmarks/results/metrics_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks import report
from warmgate.proxy.observability.metrics import Metrics

INTER_TOKEN_GAPS = 10
FINISHED = SimpleNamespace(
    model="demo",
    key_id="key_bench",
    status=200,
    billed=True,
    price_micro_usd=2000,
    prompt_tokens=812,
    cached_tokens=640,
    completion_tokens=64,
)


def warmgate_recorder() -> Callable[[], None]:
    metrics = Metrics()

    def record() -> None:
        metrics.backend_request("demo@http://10.0.0.5:30000", "demo", "ok", failed=False)
        metrics.observe_ttft("demo@http://10.0.0.5:30000", "demo", 0.08)
        for _ in range(INTER_TOKEN_GAPS):
            metrics.observe_inter_token("demo@http://10.0.0.5:30000", "demo", 0.012)
        metrics.observe_overhead(0.0003)
        metrics.account(FINISHED)

    return record


def prometheus_recorder(module: Any) -> Callable[[], None]:
    """The same observations through prometheus-client's instruments (labels resolved per
    observation, as a handler does)."""
    registry = module.CollectorRegistry()
    counter, histogram = module.Counter, module.Histogram
    backend = counter("backend_requests", "", ["backend", "model", "outcome"], registry=registry)
    ttft = histogram("ttft_seconds", "", ["backend", "model"], registry=registry)
    gaps = histogram("inter_token_seconds", "", ["backend", "model"], registry=registry)
    overhead = histogram("overhead_seconds", "", registry=registry)
    requests = counter("model_requests", "", ["model", "status"], registry=registry)
    tokens = counter("model_tokens", "", ["model", "kind"], registry=registry)
    billed = counter("model_billed", "", ["model"], registry=registry)
    revenue = counter("model_revenue_usd", "", ["model"], registry=registry)
    per_key = counter("key_requests", "", ["key"], registry=registry)
    key_billed = counter("key_billed", "", ["key"], registry=registry)
    key_revenue = counter("key_revenue_usd", "", ["key"], registry=registry)
    url = "demo@http://10.0.0.5:30000"

    def record() -> None:
        backend.labels(url, "demo", "ok").inc()
        ttft.labels(url, "demo").observe(0.08)
        for _ in range(INTER_TOKEN_GAPS):
            gaps.labels(url, "demo").observe(0.012)
        overhead.observe(0.0003)
        requests.labels("demo", "200").inc()
        tokens.labels("demo", "prompt").inc(812)
        tokens.labels("demo", "cached").inc(640)
        tokens.labels("demo", "completion").inc(64)
        billed.labels("demo").inc()
        revenue.labels("demo").inc(0.002)
        per_key.labels("key_bench").inc()
        key_billed.labels("key_bench").inc()
        key_revenue.labels("key_bench").inc(0.002)

    return record


def cpu_us_per_request(record: Callable[[], None], requests: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            record()
        best = min(best, time.process_time() - started)
    return best / requests * 1e6


def prometheus_module(multiprocess_dir: str | None) -> Any:
    """prometheus-client, freshly imported: its multiprocess mode is chosen at import time by
    the PROMETHEUS_MULTIPROC_DIR variable."""
    for name in [name for name in sys.modules if name.startswith("prometheus_client")]:
        del sys.modules[name]
    if multiprocess_dir is None:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
    return importlib.import_module("prometheus_client")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics_cost", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests: ~5 s")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    args = parser.parse_args(argv)
    requests, rounds = (5_000, 3) if args.quick else (30_000, 5)
    figures = {"warmgate": cpu_us_per_request(warmgate_recorder(), requests, rounds)}
    figures["prometheus-client"] = cpu_us_per_request(
        prometheus_recorder(prometheus_module(None)), requests, rounds
    )
    with tempfile.TemporaryDirectory(prefix="warmgate-prom-") as folder:
        multiprocess = prometheus_recorder(prometheus_module(folder))
        figures["prometheus-client multiprocess"] = cpu_us_per_request(
            multiprocess, requests, rounds
        )
    prometheus_module(None)
    labels = {
        "warmgate": "Warmgate's renderer (dicts, no lock)",
        "prometheus-client": "prometheus-client, one process",
        "prometheus-client multiprocess": "prometheus-client, multiprocess mode (mmap files)",
    }
    base = figures["warmgate"]
    rows = [
        [labels[name], f"{value:.2f}", f"{value / base:.1f}x"] for name, value in figures.items()
    ]
    command = report.command_line("metrics_cost", argv)
    markdown = (
        f"Command: `{command}`\n\nCPU per request to record one streamed, billed request's "
        f"metrics ({INTER_TOKEN_GAPS} inter-token gaps), best of {rounds} rounds of "
        f"{requests:,} requests:\n\n"
        + report.markdown_table(["recorder", "CPU µs per request", "vs Warmgate"], rows)
    )
    print(markdown)
    stem = "metrics_cost-quick" if args.quick else "metrics_cost"
    data = {"command": command, "machine": report.machine(), "cpu_us_per_request": figures}
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    report.write_json(json_path, data)
    md_path.write_text(markdown)
    report.print_written([json_path, md_path])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
