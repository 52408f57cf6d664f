"""What a gateway adds to every request: requests/s, added latency, CPU per request, memory.

Direct to a near-zero-cost upstream versus through each relay, stream and non-stream, at several
concurrencies, all in one run and interleaved (each round visits every target in a rotated
order, so drift on a shared machine spreads over all of them). Each server process is pinned to
the server CPU, the load generator and the upstream to the load CPU; the report says which.

Targets: `direct`, `bare` (benchmarks/bare_relay.py, the ~60-line Litestar + msgspec + aiohttp
baseline), `warmgate` (keys, limits, ledger, routing, health, access log: all on), `warmgate-off`
(keys, limits and ledger off: their cost alone), and the peers `sglang-router`, `litellm`,
`skyserve` when their venvs exist (`--peers` installs them; see benchmarks/peers.py).

    python -m benchmarks.overhead            # full run, ~15 min on 2 cores
    python -m benchmarks.overhead --quick    # < 2 min: direct, bare, warmgate on/off

Writes benchmarks/results/overhead.{json,md,png} (quick: overhead-quick.*); the rows, figures,
report and plot are computed in benchmarks/overhead_results.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import overhead_results, report
from benchmarks.gateway import BENCH_KEY, REPO_ROOT, warmgate_process
from benchmarks.loadgen import Workload, chat_body, run_subprocess
from benchmarks.overhead_results import LABELS, MODES, TARGETS
from benchmarks.peers import PEERS
from benchmarks.processes import ServerProcess, chat_probe, free_port, free_port_range
from benchmarks.progress import CellCounter
from benchmarks.upstreams import canned_process, replica_urls, sim_process

MODEL = "demo"
# `baseline` runs only with --baseline (another build's command).
ALL_TARGETS = tuple(key for key in TARGETS if key != "baseline")


@dataclass
class Target:
    key: str
    url: str
    api_key: str | None = None
    process: ServerProcess | None = None
    note: str = ""


@dataclass
class Run:
    target: str
    mode: str
    concurrency: int
    round: int
    summary: dict[str, Any]
    server_cpu_s: float | None
    rss_mb: float | None


@dataclass
class Plan:
    concurrencies: list[int]
    modes: list[str]
    rounds: int
    duration_s: float
    warmup: int
    inflight: int
    hold_ms: int
    server_cpus: str | None
    load_cpus: str | None
    # Another build's `warmgate` command, measured beside this one (`baseline`).
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run: < 2 minutes")
    parser.add_argument("--targets", help=f"comma-separated subset of {','.join(ALL_TARGETS)}")
    parser.add_argument("--peers", action="store_true", help="install missing peers first")
    parser.add_argument("--concurrency", help="comma-separated, default 1,16,64 (quick: 1,64)")
    parser.add_argument("--modes", default="non-stream,stream")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, help="seconds per cell (default 4, quick 1)")
    parser.add_argument("--inflight", type=int, help="memory check: requests held in flight")
    parser.add_argument("--hold-ms", type=int, help="memory check: upstream hold (default 4000)")
    parser.add_argument("--warmup", type=int, help="requests before each run (default 100)")
    parser.add_argument("--upstream", choices=["canned", "sim"], default="canned")
    parser.add_argument("--server-cpus", help="CPUs of the servers under test (default: 1)")
    parser.add_argument("--load-cpus", help="CPUs of load generator + upstream (default: 0)")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    parser.add_argument(
        "--baseline",
        metavar="WARMGATE",
        help="another build's `warmgate` command (say, a checkout of the previous release in its "
        "own venv), run beside this one with the same config: CPU per request before and after",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep server logs and configs")
    parser.add_argument("--name", help="result file stem (default overhead / overhead-quick)")
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    two_cpus = (os.cpu_count() or 1) >= 2
    default_conc = "1,64" if args.quick else "1,16,64"
    return Plan(
        concurrencies=[int(c) for c in (args.concurrency or default_conc).split(",")],
        modes=[m for m in args.modes.split(",") if m in MODES],
        rounds=args.rounds or 3,
        duration_s=args.duration or (1.0 if args.quick else 4.0),
        warmup=args.warmup if args.warmup is not None else (20 if args.quick else 100),
        inflight=args.inflight if args.inflight is not None else (200 if args.quick else 1000),
        hold_ms=args.hold_ms or (1500 if args.quick else 4000),
        server_cpus=args.server_cpus or ("1" if two_cpus else None),
        load_cpus=args.load_cpus or ("0" if two_cpus else None),
        baseline=args.baseline,
    )


def choose_targets(args: argparse.Namespace, plan: Plan) -> list[str]:
    if args.targets:
        wanted = [t for t in args.targets.split(",") if t]
        unknown = set(wanted) - set(ALL_TARGETS) - ({"baseline"} if plan.baseline else set())
        if unknown:
            raise SystemExit(f"unknown targets: {', '.join(sorted(unknown))}")
    elif args.quick and not args.peers:
        wanted = ["direct", "bare", "warmgate", "warmgate-off"]
    else:
        wanted = list(ALL_TARGETS)
    if plan.baseline is not None:
        if shutil.which(plan.baseline) is None:
            raise SystemExit(f"--baseline: no such command: {plan.baseline}")
        wanted = [*wanted, "baseline"] if "baseline" not in wanted else wanted
    chosen = []
    for key in wanted:
        peer = PEERS.get(key)
        if peer is not None and not peer.installed():
            if args.peers:
                peer.install()
            else:
                plan.notes.append(
                    f"{peer.name} skipped: not installed (rerun with --peers to install it)"
                )
                continue
        chosen.append(key)
    return chosen


def start_targets(
    keys: Sequence[str], upstream: str, plan: Plan, workdir: Path, stack: contextlib.ExitStack
) -> list[Target]:
    targets: list[Target] = []
    for key in keys:
        if key == "direct":
            targets.append(Target(key, upstream))
            continue
        port = free_port()
        if key == "bare":
            argv = [sys.executable, "-m", "benchmarks.bare_relay", "--upstream", upstream]
            argv += ["--port", str(port)]
            process = ServerProcess(
                key, argv, cpus=plan.server_cpus, log_path=workdir / "bare.log", cwd=REPO_ROOT
            )
            target = Target(key, f"http://127.0.0.1:{port}", None, process)
        elif key in ("warmgate", "warmgate-off", "baseline"):
            process = warmgate_process(
                key,
                workdir,
                port=port,
                model=MODEL,
                backends=[upstream],
                cpus=plan.server_cpus,
                features=key != "warmgate-off",
                executable=plan.baseline if key == "baseline" else None,
            )
            target = Target(key, f"http://127.0.0.1:{port}", BENCH_KEY, process)
        else:
            peer = PEERS[key]
            argv = peer.command(port, upstream, MODEL, workdir)
            process = ServerProcess(
                key,
                argv,
                cpus=plan.server_cpus,
                log_path=workdir / f"{key}.log",
                env=peer.env(),
                cwd=workdir,
            )
            target = Target(key, f"http://127.0.0.1:{port}", peer.api_key, process, peer.note)
        stack.enter_context(process)
        targets.append(target)
    for target in targets:
        if target.process is not None:
            headers = {"Content-Type": "application/json"}
            if target.api_key:
                headers["Authorization"] = f"Bearer {target.api_key}"
            target.process.wait_until(
                target.url + "/v1/chat/completions", chat_probe(MODEL), headers, timeout_s=120
            )
        if target.key == "warmgate-off":
            check_switches(target, plan)
    return targets


def check_switches(target: Target, plan: Plan) -> None:
    """Says which of the off switches this build honours (a request without a key must pass,
    and no x-ratelimit-* header may come back)."""
    url = target.url + "/v1/chat/completions"
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, chat_probe(MODEL), headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            auth_off = True
            limits_off = response.headers.get("x-ratelimit-limit-requests") is None
    except urllib.error.HTTPError:
        auth_off, limits_off = False, False
    if not auth_off:
        plan.notes.append(
            "warmgate-off: this build ignores [auth] enabled = false (a request without a key "
            "got 401), so it ran with key authentication on"
        )
    elif not limits_off:
        plan.notes.append("warmgate-off: this build still sends x-ratelimit-* with limits off")


def measure(
    target: Target, mode: str, concurrency: int, *, round_: int, plan: Plan, workdir: Path
) -> Run:
    body = chat_body(MODEL, "Say hello.", 20, stream=mode == "stream")
    cpu_before = target.process.cpu_seconds() if target.process else None
    summary = run_subprocess(
        target.url,
        target.api_key,
        Workload(bodies=[body]),
        workdir=workdir,
        concurrency=concurrency,
        duration_s=plan.duration_s,
        warmup=plan.warmup,
        label=f"{target.key} {mode} c={concurrency} r{round_ + 1}",
        cpus=plan.load_cpus,
        timeout_s=plan.duration_s * 20 + 120,
    )
    cpu = None
    rss = None
    process = target.process
    if process is not None and cpu_before is not None:
        if process.alive():
            cpu = process.cpu_seconds() - cpu_before
            rss = process.rss_bytes() / 1e6
        else:
            code = process.process.returncode if process.process else None
            plan.notes.append(
                f"{LABELS[target.key]} exited (code {code}; negative = killed by that signal) "
                f"during {mode} c={concurrency} round {round_ + 1}; its later cells were skipped"
            )
    return Run(target.key, mode, concurrency, round_, summary, cpu, rss)


def cell_counter(targets: Sequence[Target], plan: Plan, memory_check: bool) -> CellCounter:
    """One cell per target, mode, concurrency and round, then one per server's memory check;
    weighted by their expected seconds (a run's start and warm-up cost about half a second)."""
    cells = len(plan.modes) * len(plan.concurrencies) * plan.rounds * len(targets)
    weights = [plan.duration_s + 0.5] * cells
    if memory_check:
        servers = sum(1 for t in targets if t.process is not None)
        weights += [plan.hold_ms / 1000 + 1.0] * servers
    return CellCounter("overhead", weights)


def measure_memory(
    targets: Sequence[Target], upstream: str, plan: Plan, workdir: Path, counter: CellCounter
) -> dict[str, Any]:
    """Peak resident memory of each server with `plan.inflight` requests held in flight."""
    results: dict[str, Any] = {"inflight": plan.inflight, "hold_ms": plan.hold_ms, "targets": {}}
    set_delay = f"{upstream}/_canned/delay?ms="
    urllib.request.urlopen(set_delay + str(plan.hold_ms), timeout=5).close()  # noqa: S310
    try:
        for target in targets:
            if target.process is None:
                continue
            counter.start(f"{target.key} memory, {plan.inflight} requests in flight")
            if not target.process.alive():
                counter.finish()
                continue
            idle = target.process.rss_bytes()
            body = chat_body(MODEL, "Say hello.", 20, stream=False)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                future = pool.submit(
                    run_subprocess,
                    target.url,
                    target.api_key,
                    Workload(bodies=[body]),
                    workdir=workdir,
                    concurrency=plan.inflight,
                    requests=plan.inflight,
                    label=f"{target.key} {plan.inflight} in flight",
                    cpus=plan.load_cpus,
                    timeout_s=300,
                )
                peak = idle
                while not future.done():
                    peak = max(peak, target.process.rss_bytes())
                    time.sleep(0.05)
                summary = future.result()
            results["targets"][target.key] = {
                "idle_rss_mb": round(idle / 1e6, 1),
                "peak_rss_mb": round(peak / 1e6, 1),
                "ok": summary["ok"],
                "errors": summary["errors"],
                "e2e_ms_p50": summary["e2e_ms"].get("p50"),
            }
            counter.finish()
    finally:
        urllib.request.urlopen(set_delay + "0", timeout=5).close()  # noqa: S310
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    keys = choose_targets(args, plan)
    name = args.name or ("overhead-quick" if args.quick else "overhead")
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-overhead-"))
    print(f"[overhead] targets {', '.join(keys)}; logs in {workdir}", file=sys.stderr)
    started = time.monotonic()
    runs: list[Run] = []
    memory = None
    with contextlib.ExitStack() as stack:
        upstream_port = free_port_range(1)
        if args.upstream == "canned":
            upstream_process = canned_process(
                workdir, port=upstream_port, model=MODEL, cpus=plan.load_cpus
            )
            upstream_desc = "canned answers (benchmarks/canned_upstream.py, ~30-50 µs/request)"
        else:
            upstream_process = sim_process(
                workdir, port=upstream_port, replicas=1, model=MODEL, time_scale=0.0,
                cpus=plan.load_cpus,
            )  # fmt: skip
            upstream_desc = "warmgate sim --time-scale 0 (one replica)"
            plan.notes.append("the in-flight memory check needs the canned upstream: skipped")
        stack.enter_context(upstream_process)
        upstream = replica_urls(upstream_port, 1)[0]
        upstream_process.wait_until(upstream + "/health", timeout_s=60)
        targets = start_targets(keys, upstream, plan, workdir, stack)
        memory_check = bool(plan.inflight) and args.upstream == "canned"
        counter = cell_counter(targets, plan, memory_check)
        for mode in plan.modes:
            for concurrency in plan.concurrencies:
                for round_ in range(plan.rounds):
                    shift = round_ % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        counter.start(f"{target.key} {mode} c={concurrency} round {round_ + 1}")
                        if target.process is None or target.process.alive():
                            runs.append(measure(target, mode, concurrency, round_=round_,
                                                plan=plan, workdir=workdir))  # fmt: skip
                        counter.finish()
        if memory_check:
            memory = measure_memory(targets, upstream, plan, workdir, counter)
        counter.close()
    plan.notes.append(
        "direct is bounded by the Python load generator sharing its CPU with the upstream, "
        "not by the upstream; req per CPU-s is the server's own capacity on one core."
    )
    result: dict[str, Any] = {
        "benchmark": "overhead",
        "name": name,
        "quick": bool(args.quick),
        "command": report.command_line("overhead", argv),
        "machine": report.machine(),
        "upstream": upstream_desc,
        "server_cpus": plan.server_cpus,
        "load_cpus": plan.load_cpus,
        "rounds": plan.rounds,
        "duration_s": plan.duration_s,
        "modes": plan.modes,
        "concurrencies": plan.concurrencies,
        "targets": {t.key: {"label": LABELS[t.key], "note": t.note} for t in targets},
        "wall_s": round(time.monotonic() - started, 1),
        "memory": memory,
        "notes": plan.notes,
        "runs": [run.__dict__ for run in runs],
    }
    written = report.publish(args.out, name, result, overhead_results.DRAWING)
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    report.print_written(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
