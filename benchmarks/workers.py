"""`warmgate serve --workers N`: CPU per request and requests/s of 1 worker against N.

Every feature on (keys, limits, SQLite ledger, routing, access log), in front of the canned
upstream, at the same offered load, interleaved in rounds (each round visits the targets in a
rotated order, so drift on a shared machine spreads over all of them). CPU is read from /proc
for each server's whole process tree (the parent and its workers), over the measured requests
only (a warm-up run comes first, outside the measurement).

Nothing is pinned: the workers need every core. On a machine with as many cores as workers,
the load generator and the upstream share those cores, so requests/s says little about
scaling there; CPU per request is the figure that holds (the goal: N workers within 10 % of
one).

    python -m benchmarks.workers            # ~3 min
    python -m benchmarks.workers --quick    # ~1 min

Writes benchmarks/results/workers.{json,md} (quick: workers-quick.*).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.gateway import BENCH_KEY, warmgate_process
from benchmarks.loadgen import Workload, chat_body, run_subprocess
from benchmarks.processes import ServerProcess, chat_probe, free_port, free_port_range
from benchmarks.progress import CellCounter
from benchmarks.upstreams import canned_process, replica_urls

MODEL = "demo"
GOAL_RATIO = 1.10


def start_gateway(
    workers: int, upstream: str, workdir: Path, cpus: str | None
) -> tuple[str, ServerProcess]:
    port = free_port()
    name = f"warmgate-w{workers}"
    process = warmgate_process(
        name, workdir, port=port, model=MODEL, backends=[upstream], cpus=cpus
    )
    process.argv = [*process.argv, "--workers", str(workers)]
    return f"http://127.0.0.1:{port}", process


def measure(
    url: str,
    process: ServerProcess,
    *,
    concurrency: int,
    duration_s: float,
    workdir: Path,
    cpus: str | None,
) -> dict[str, Any]:
    body = chat_body(MODEL, "Say hello.", 20, stream=False)
    run_subprocess(
        url, BENCH_KEY, Workload(bodies=[body]), workdir=workdir, concurrency=concurrency,
        requests=200, label="warm-up", cpus=cpus,
    )  # fmt: skip
    cpu_before = process.cpu_seconds()
    summary = run_subprocess(
        url,
        BENCH_KEY,
        Workload(bodies=[body]),
        workdir=workdir,
        concurrency=concurrency,
        duration_s=duration_s,
        label=f"c={concurrency}",
        cpus=cpus,
        timeout_s=duration_s * 20 + 120,
    )
    cpu_s = process.cpu_seconds() - cpu_before
    ok = summary["ok"]
    return {
        "ok": ok,
        "errors": sum(summary["errors"].values()),
        "req_per_s": summary["req_per_s"],
        "e2e_ms_p50": summary["e2e_ms"].get("p50"),
        "server_cpu_s": round(cpu_s, 3),
        "cpu_ms_per_request": round(1000 * cpu_s / ok, 4) if ok else None,
        "processes": len(process.tree()),
    }


def render(result: Mapping[str, Any]) -> str:
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"Every feature on, canned upstream, {result['pinning']}, {result['rounds']} interleaved "
        f"round(s) of {result['duration_s']} s per cell; machine: {result['machine']['cpus']} "
        f"x {result['machine']['cpu_model']}, load average at start "
        f"{', '.join(f'{v:.2f}' for v in result['machine']['load_average_at_start'] or [])}.",
        "",
    ]
    rows = []
    for concurrency, cells in result["cells"].items():
        for workers, figures in cells.items():
            rows.append(
                [
                    workers,
                    concurrency,
                    figures["req_per_s"],
                    figures["cpu_ms_per_request"],
                    f"{figures['cpu_min']:.3f} to {figures['cpu_max']:.3f}",
                    figures["e2e_ms_p50"],
                    figures["errors"],
                ]
            )
    headers = ["workers", "c", "req/s", "server CPU ms/req", "spread", "p50 ms", "errors"]
    lines += [report.markdown_table(headers, rows), ""]
    for concurrency, ratio in result["cpu_ratio"].items():
        met = "yes" if ratio <= GOAL_RATIO else "**no**"
        lines.append(
            f"- c={concurrency}: CPU per request of {result['workers']} workers ÷ 1 worker = "
            f"{ratio:.3f} (goal ≤ {GOAL_RATIO}: {met})"
        )
    lines += [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


def summarize(
    runs: Sequence[dict[str, Any]], concurrencies: Sequence[int], counts: Sequence[int]
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Per concurrency and worker count: medians over rounds; and per concurrency, CPU per
    request of the most workers divided by that of one."""
    cells: dict[str, dict[str, Any]] = {}
    ratio: dict[str, float] = {}
    for concurrency in concurrencies:
        per_count = {}
        for count in counts:
            mine = [r for r in runs if r["workers"] == count and r["concurrency"] == concurrency]
            cpu = [r["cpu_ms_per_request"] for r in mine if r["cpu_ms_per_request"] is not None]
            per_count[str(count)] = {
                "req_per_s": statistics.median(r["req_per_s"] for r in mine),
                "cpu_ms_per_request": statistics.median(cpu),
                "cpu_min": min(cpu),
                "cpu_max": max(cpu),
                "e2e_ms_p50": statistics.median(r["e2e_ms_p50"] for r in mine),
                "errors": sum(r["errors"] for r in mine),
            }
        cells[str(concurrency)] = per_count
        ratio[str(concurrency)] = (
            per_count[str(counts[-1])]["cpu_ms_per_request"] / per_count["1"]["cpu_ms_per_request"]
        )
    return cells, ratio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run: ~1 minute")
    parser.add_argument("--workers", type=int, default=2, help="the N compared with 1")
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float, help="seconds per cell (default 3, quick 1.5)")
    parser.add_argument("--server-cpus", help="CPUs of the gateways (default: not pinned)")
    parser.add_argument("--load-cpus", help="CPUs of load generator + upstream (default: not)")
    parser.add_argument("--name", help="result file stem (default workers / workers-quick)")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 4)
    duration_s = args.duration or (1.5 if args.quick else 3.0)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    counts = [1, args.workers]
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-workers-"))
    print(f"[workers] logs in {workdir}", file=sys.stderr)
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        upstream_port = free_port_range(1)
        upstream_process = canned_process(
            workdir, port=upstream_port, model=MODEL, cpus=args.load_cpus
        )
        stack.enter_context(upstream_process)
        upstream = replica_urls(upstream_port, 1)[0]
        upstream_process.wait_until(upstream + "/health", timeout_s=60)
        gateways = {}
        for count in counts:
            url, process = start_gateway(count, upstream, workdir, args.server_cpus)
            stack.enter_context(process)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_KEY}"}
            process.wait_until(url + "/v1/chat/completions", chat_probe(MODEL), headers, 120)
            gateways[count] = (url, process)
        counter = CellCounter(
            "workers", [duration_s + 1.5] * rounds * len(counts) * len(concurrencies)
        )
        for concurrency in concurrencies:
            for round_ in range(rounds):
                shift = round_ % len(counts)
                for count in counts[shift:] + counts[:shift]:
                    counter.start(f"{count} worker(s) c={concurrency} round {round_ + 1}")
                    url, process = gateways[count]
                    figures = measure(
                        url, process, concurrency=concurrency, duration_s=duration_s,
                        workdir=workdir, cpus=args.load_cpus,
                    )  # fmt: skip
                    runs.append({"workers": count, "concurrency": concurrency, **figures})
                    counter.finish()
        counter.close()
    cells, ratio = summarize(runs, concurrencies, counts)
    result = {
        "benchmark": "workers",
        "command": report.command_line("workers", argv),
        "machine": report.machine(),
        "workers": args.workers,
        "pinning": (
            f"gateways on CPU {args.server_cpus}, load generator and upstream on CPU "
            f"{args.load_cpus or 'any'}"
            if args.server_cpus
            else "nothing pinned"
        ),
        "rounds": rounds,
        "duration_s": duration_s,
        "cells": cells,
        "cpu_ratio": ratio,
        "wall_s": round(time.monotonic() - started, 1),
        "notes": [
            "medians over rounds; the spread is the lowest and highest round",
            "the load generator, the upstream and the workers share the machine's cores: "
            "requests/s here is no measure of how workers scale on a larger machine",
        ],
        "runs": runs,
    }
    name = args.name or ("workers-quick" if args.quick else "workers")
    written = report.write_results(args.out, name, result, render)
    print(render(result))
    shutil.rmtree(workdir, ignore_errors=True)
    report.print_written(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
