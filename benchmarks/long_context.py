"""Long prompts: the time to first token Warmgate adds, from 1k to 128k prompt tokens.

TTFT, ITL, TPOT and end-to-end time with SGLang `bench_serving`'s definitions (benchmarks/stats.py),
for prompts of 1k, 8k, 32k, 64k and 128k tokens, direct to the backend versus through Warmgate
(every feature on), at several concurrencies, interleaved (each round sends a batch direct, then
one through Warmgate, alternating which goes first). Every prompt is unique, so no request rides
on another's prefix cache.

Default backend: simulated SGLang replicas with their latency model (`warmgate sim`). Point it at
a real SGLang server or fleet endpoint with `--base-url URL --api-key KEY --model NAME`: the
direct requests go there, and a local Warmgate is configured in front of the same URL.

    python -m benchmarks.long_context            # full: 5 lengths x c=1,4, 2 rounds
    python -m benchmarks.long_context --quick    # < 2 min: 1k, 8k, 32k at time scale 0.1

Writes benchmarks/results/long_context.{json,md,png} (quick: long_context-quick.*); the rows,
figures, report and plot are computed in benchmarks/long_context_results.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import long_context_results, report
from benchmarks.gateway import BENCH_KEY, warmgate_process
from benchmarks.loadgen import Workload, run_subprocess
from benchmarks.long_context_results import TARGETS, Cell
from benchmarks.processes import chat_probe, free_port, free_port_range, http_ok
from benchmarks.progress import CellCounter
from benchmarks.stats import Outcome
from benchmarks.upstreams import canned_process, replica_urls, sim_process
from benchmarks.workloads import long_prompt_body


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.long_context", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run: < 2 minutes")
    parser.add_argument("--lengths", help="prompt tokens, comma-separated")
    parser.add_argument("--concurrency", help="comma-separated (default 1,4; quick 1,2)")
    parser.add_argument("--requests", type=int, help="requests per target per cell and round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 2, quick 3)")
    parser.add_argument("--max-tokens", type=int, help="output tokens (default 64, quick 16)")
    parser.add_argument(
        "--time-scale", type=float, help="simulator delays x (default 1, quick 0.1)"
    )
    parser.add_argument("--replicas", type=int, default=1, help="simulator replicas")
    parser.add_argument(
        "--backend",
        choices=["sim", "canned"],
        default="sim",
        help="canned: an upstream that answers at once, isolating the gateway's own cost",
    )
    parser.add_argument("--base-url", help="a real SGLang backend instead of the simulator")
    parser.add_argument("--api-key", help="the backend's --api-key, if it has one")
    parser.add_argument("--model", help="served model name (default: the simulator's 'demo')")
    parser.add_argument("--server-cpus", help="Warmgate's CPUs (default: 1)")
    parser.add_argument("--load-cpus", help="load generator + simulator CPUs (default: 0)")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--keep-logs", action="store_true", help="keep server logs and configs")
    parser.add_argument("--name", help="result file stem")
    return parser.parse_args(argv)


def requests_for(length: int, concurrency: int, quick: bool, override: int | None) -> int:
    if override:
        return override
    if quick:
        return max(concurrency, 2)
    return max(concurrency * 2, 6 if length <= 8000 else 4)


class Plan(msgspec.Struct, kw_only=True):
    quick: bool
    lengths: list[int]
    concurrencies: list[int]
    rounds: int
    max_tokens: int
    requests: int | None
    model: str
    server_cpus: str | None
    load_cpus: str | None
    ejections: int = 0  # times the gateway had ejected the backend before a batch


def make_plan(args: argparse.Namespace) -> Plan:
    two_cpus = (os.cpu_count() or 1) >= 2
    # 128,000 rather than 131,072: a 128k-context model must also fit the chat template and
    # the answer (SGLang refuses input + max_tokens beyond the context length).
    default_lengths = "1000,8000,32000" if args.quick else "1000,8000,32000,64000,128000"
    default_concurrency = "1,2" if args.quick else "1,4"
    return Plan(
        quick=args.quick,
        lengths=[int(x) for x in (args.lengths or default_lengths).split(",")],
        concurrencies=[int(x) for x in (args.concurrency or default_concurrency).split(",")],
        rounds=args.rounds or (3 if args.quick else 2),
        max_tokens=args.max_tokens or (16 if args.quick else 64),
        requests=args.requests,
        model=args.model or "demo",
        server_cpus=args.server_cpus or ("1" if two_cpus else None),
        load_cpus=args.load_cpus or ("0" if two_cpus else None),
    )


def start_backends(
    args: argparse.Namespace, plan: Plan, workdir: Path, stack: contextlib.ExitStack
) -> tuple[list[str], str]:
    """The backend URLs (a real one, or simulator replicas started here) and a description."""
    if args.base_url:
        return [args.base_url.rstrip("/")], f"{args.base_url} (model {plan.model})"
    if args.backend == "canned":
        port = free_port()
        canned = canned_process(workdir, port=port, model=plan.model, cpus=plan.load_cpus)
        stack.enter_context(canned)
        url = f"http://127.0.0.1:{port}"
        canned.wait_until(url + "/health", timeout_s=60)
        return [url], "canned upstream (answers at once: the gateway's own cost, no model noise)"
    time_scale = args.time_scale if args.time_scale is not None else (0.1 if args.quick else 1.0)
    port = free_port_range(args.replicas)
    sim = sim_process(
        workdir, port=port, replicas=args.replicas, model=plan.model, time_scale=time_scale,
        cpus=plan.load_cpus,
    )  # fmt: skip
    stack.enter_context(sim)
    backends = replica_urls(port, args.replicas)
    for url in backends:
        sim.wait_until(url + "/health", timeout_s=60)
    description = (
        f"warmgate sim, {args.replicas} replica(s), default latency model "
        f"(Llama-3.x 70B TP8 H100 figures) at time scale {time_scale}"
    )
    return backends, description


def wait_ready(gateway_url: str, plan: Plan) -> None:
    """Waits until the gateway routes to a backend again. A long prefill sent directly can hold
    the backend's /health_generate probe past its timeout while the gateway itself has nothing
    in flight, and the gateway then ejects the backend until it passes probes again: counted and
    reported, not measured as TTFT."""
    if http_ok(gateway_url + "/ready"):
        return
    plan.ejections += 1
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not http_ok(gateway_url + "/ready"):
        time.sleep(0.5)


def cell_counter(plan: Plan) -> CellCounter:
    """One cell per prompt length, concurrency, round and target, weighted by the tokens it
    sends (prefill dominates), plus a fixed cost per batch."""
    weights = []
    for length in plan.lengths:
        for concurrency in plan.concurrencies:
            count = requests_for(length, concurrency, plan.quick, plan.requests)
            weights += [count * (length + 2000)] * (plan.rounds * len(TARGETS))
    return CellCounter("long_context", weights)


def measure(
    urls: dict[str, tuple[str, str | None]], plan: Plan, workdir: Path
) -> tuple[dict[Cell, list[Outcome]], dict[Cell, float]]:
    outcomes: dict[Cell, list[Outcome]] = {}
    walls: dict[Cell, float] = {}
    for url, key in urls.values():  # warm connections and code paths first
        warm = Workload(bodies=[long_prompt_body(plan.model, 10**7 + i, 64, 4) for i in range(4)])
        run_subprocess(
            url, key, warm, workdir=workdir, concurrency=2, requests=4, cpus=plan.load_cpus
        )
    counter = cell_counter(plan)
    seed = 0
    for length in plan.lengths:
        for concurrency in plan.concurrencies:
            count = requests_for(length, concurrency, plan.quick, plan.requests)
            for round_ in range(plan.rounds):
                order = TARGETS if round_ % 2 == 0 else TARGETS[::-1]
                for target in order:
                    label = f"{target} {length:,} tokens c={concurrency} round {round_ + 1}"
                    counter.start(label)
                    url, key = urls[target]
                    if target == "warmgate":
                        wait_ready(url, plan)
                    bodies = []
                    for _ in range(count):
                        seed += 1
                        bodies.append(long_prompt_body(plan.model, seed, length, plan.max_tokens))
                    result = run_subprocess(
                        url, key, Workload(bodies=bodies), workdir=workdir,
                        concurrency=concurrency, requests=count, raw=True, cpus=plan.load_cpus,
                        label=label, timeout_s=3600,
                    )  # fmt: skip
                    cell = (target, length, concurrency, round_)
                    outcomes[cell] = msgspec.convert(result["outcomes"], list[Outcome])
                    walls[cell] = result["wall_s"]
                    counter.finish()
    counter.close()
    return outcomes, walls


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    name = args.name or ("long_context-quick" if args.quick else "long_context")
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-long-context-"))
    print(f"[long_context] logs in {workdir}", file=sys.stderr)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        backends, backend_desc = start_backends(args, plan, workdir, stack)
        gateway_port = free_port()
        gateway = warmgate_process(
            "warmgate", workdir, port=gateway_port, model=plan.model, backends=backends,
            cpus=plan.server_cpus, backend_key=args.api_key,
        )  # fmt: skip
        stack.enter_context(gateway)
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_KEY}"}
        gateway.wait_until(
            gateway_url + "/v1/chat/completions", chat_probe(plan.model), headers, timeout_s=120
        )
        urls = {"direct": (backends[0], args.api_key), "warmgate": (gateway_url, BENCH_KEY)}
        outcomes, walls = measure(urls, plan, workdir)
    rows = long_context_results.summarize_cells(
        outcomes, walls, plan.lengths, plan.concurrencies, plan.rounds
    )
    result_doc: dict[str, Any] = {
        "benchmark": "long_context",
        "name": name,
        "quick": bool(args.quick),
        "command": report.command_line("long_context", argv),
        "machine": report.machine(),
        "backend": backend_desc,
        "server_cpus": plan.server_cpus,
        "load_cpus": plan.load_cpus,
        "rounds": plan.rounds,
        "max_tokens": plan.max_tokens,
        "wall_s": round(time.monotonic() - started, 1),
        "rows": rows,
        "gateway_not_ready_before_batch": plan.ejections,
    }
    written = report.publish(args.out, name, result_doc, long_context_results.DRAWING)
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    report.print_written(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
