"""Routing quality on a multi-turn shared-prefix workload over four simulated SGLang replicas.

The workload is SGLang's `generated-shared-prefix` made multi-turn: groups of conversations share
a long system prompt, and each turn resends the whole history plus a new question. Each replica
has a bounded KV cache (`--kv-tokens`), smaller than the whole working set, so where a request
lands decides whether its prefix is cached. Measured for Warmgate's `cache_aware`,
`least_outstanding` and `round_robin` policies and for SGLang's own router (`sglang-router`,
cache_aware, in its own venv; see benchmarks/peers.py) in front of the same replicas, one after
another, each starting from empty caches: TTFT p50/p99, throughput, and the cache-hit rate
(`cached_tokens` / `prompt_tokens` from the replicas' usage).

    python -m benchmarks.routing            # full: 16 groups x 4 conversations x 4 turns
    python -m benchmarks.routing --quick    # < 2 min

Each of `--rounds` rounds (default 3) plays the workload through every policy, in an order
rotated from round to round. Writes benchmarks/results/routing.{json,md,png} (quick:
routing-quick.*); the rows, figures, report and plot are computed in
benchmarks/routing_results.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import report, routing_results
from benchmarks.gateway import BENCH_KEY, warmgate_process
from benchmarks.loadgen import Conversation, Workload, run_subprocess
from benchmarks.peers import PEERS
from benchmarks.processes import ServerProcess, chat_probe, free_port, free_port_range
from benchmarks.progress import CellCounter
from benchmarks.routing_results import LABELS, POLICIES
from benchmarks.upstreams import replica_urls, sim_process
from benchmarks.workloads import shared_prefix_conversations

MODEL = "demo"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run: < 2 minutes")
    parser.add_argument("--policies", help=f"comma-separated subset of {','.join(POLICIES)}")
    parser.add_argument("--peers", action="store_true", help="install sglang-router if missing")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every policy")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--groups", type=int, help="shared system prompts (default 16, quick 8)")
    parser.add_argument("--per-group", type=int, help="conversations per group (default 4)")
    parser.add_argument("--turns", type=int, help="turns per conversation (default 4, quick 3)")
    parser.add_argument("--system-tokens", type=int, help="system prompt (default 2048)")
    parser.add_argument("--question-tokens", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, help="conversations at once (default 16)")
    parser.add_argument(
        "--kv-tokens", type=int, help="KV cache per replica (default 24576, quick 16384)"
    )
    parser.add_argument("--time-scale", type=float, help="simulator delays x (default 1)")
    parser.add_argument("--server-cpus", help="gateway CPUs (default: 1)")
    parser.add_argument("--load-cpus", help="load generator + simulator CPUs (default: 0)")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--keep-logs", action="store_true", help="keep server logs and configs")
    parser.add_argument("--name", help="result file stem")
    return parser.parse_args(argv)


def replica_stats(urls: Sequence[str]) -> list[dict[str, Any]]:
    stats = []
    for url in urls:
        with urllib.request.urlopen(url + "/_sim/stats", timeout=10) as response:  # noqa: S310
            stats.append(json.loads(response.read()))
    return stats


def flush_caches(urls: Sequence[str]) -> None:
    for url in urls:
        request = urllib.request.Request(url + "/flush_cache", data=b"", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback only


def gateway_for(
    policy: str, backends: Sequence[str], workdir: Path, cpus: str | None
) -> tuple[ServerProcess, str, str | None]:
    port = free_port()
    if policy == "sglang-router":
        peer = PEERS["sglang-router"]
        argv = [str(peer.python), "-m", "sglang_router.launch_router", "--host", "127.0.0.1",
                "--port", str(port), "--policy", "cache_aware", "--log-level", "warn",
                "--worker-urls", *backends]  # fmt: skip
        process = ServerProcess(
            policy, argv, cpus=cpus, log_path=workdir / "sglang-router.log", cwd=workdir
        )
        return process, f"http://127.0.0.1:{port}", None
    process = warmgate_process(
        f"warmgate-{policy}", workdir, port=port, model=MODEL, backends=backends, cpus=cpus,
        policy=policy,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}", BENCH_KEY


def run_policy(
    policy: str,
    backends: Sequence[str],
    conversations: list[Conversation],
    *,
    concurrency: int,
    workdir: Path,
    cpus: tuple[str | None, str | None],
) -> dict[str, Any]:
    server_cpus, load_cpus = cpus
    process, url, key = gateway_for(policy, backends, workdir, server_cpus)
    with process:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        process.wait_until(url + "/v1/chat/completions", chat_probe(MODEL), headers, 120)
        flush_caches(backends)
        before = replica_stats(backends)
        summary = run_subprocess(
            url, key, Workload(conversations=conversations), workdir=workdir,
            concurrency=concurrency, label=LABELS[policy], cpus=load_cpus, timeout_s=3600,
        )  # fmt: skip
        after = replica_stats(backends)
    per_replica = [
        a["requests_received"] - b["requests_received"] for a, b in zip(after, before, strict=True)
    ]
    return {
        "policy": policy,
        "requests": summary["requests"],
        "ok": summary["ok"],
        "errors": summary["errors"],
        "req_per_s": summary["req_per_s"],
        "output_tok_per_s": summary["output_tok_per_s"],
        "cache_hit_rate": summary["cache_hit_rate"],
        "ttft_ms": summary["ttft_ms"],
        "e2e_ms": summary["e2e_ms"],
        "wall_s": summary["wall_s"],
        "requests_per_replica": per_replica,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    two_cpus = (os.cpu_count() or 1) >= 2
    server_cpus = args.server_cpus or ("1" if two_cpus else None)
    load_cpus = args.load_cpus or ("0" if two_cpus else None)
    quick = args.quick
    groups = args.groups or (8 if quick else 16)
    per_group = args.per_group or 4
    turns = args.turns or (3 if quick else 4)
    system_tokens = args.system_tokens or 2048
    concurrency = args.concurrency or 16
    # Smaller than all groups' system prompts together, larger than one replica's share of
    # them plus its running requests: where a request lands decides whether it hits the cache.
    kv_tokens = args.kv_tokens or (16384 if quick else 24576)
    time_scale = args.time_scale if args.time_scale is not None else (0.25 if quick else 1.0)
    notes: list[str] = []
    policies = [p for p in (args.policies or ",".join(POLICIES)).split(",") if p]
    if "sglang-router" in policies and not PEERS["sglang-router"].installed():
        if args.peers:
            PEERS["sglang-router"].install()
        else:
            policies.remove("sglang-router")
            notes.append("SGLang router skipped: not installed (rerun with --peers to install it)")
    conversations = shared_prefix_conversations(
        MODEL, groups=groups, conversations_per_group=per_group, turns=turns,
        system_tokens=system_tokens, question_tokens=args.question_tokens,
        max_tokens=args.max_tokens,
    )  # fmt: skip
    name = args.name or ("routing-quick" if quick else "routing")
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-routing-"))
    print(f"[routing] logs in {workdir}", file=sys.stderr)
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        port = free_port_range(args.replicas)
        sim = sim_process(
            workdir, port=port, replicas=args.replicas, model=MODEL, time_scale=time_scale,
            cpus=load_cpus, extra=["--kv-tokens", str(kv_tokens)],
        )  # fmt: skip
        stack.enter_context(sim)
        backends = replica_urls(port, args.replicas)
        for url in backends:
            sim.wait_until(url + "/health", timeout_s=60)
        counter = CellCounter("routing", [1.0] * (args.rounds * len(policies)))
        for round_ in range(args.rounds):
            shift = round_ % len(policies)
            for policy in policies[shift:] + policies[:shift]:
                counter.start(f"{LABELS[policy]} round {round_ + 1}")
                result = run_policy(
                    policy, backends, conversations, concurrency=concurrency, workdir=workdir,
                    cpus=(server_cpus, load_cpus),
                )  # fmt: skip
                runs.append(dict(result, round=round_))
                counter.finish()
        counter.close()
    workload = {
        "groups": groups,
        "conversations_per_group": per_group,
        "turns": turns,
        "system_tokens": system_tokens,
        "question_tokens": args.question_tokens,
        "max_tokens": args.max_tokens,
        "concurrency": concurrency,
        "replicas": args.replicas,
        "kv_tokens_per_replica": kv_tokens,
        "time_scale": time_scale,
    }
    doc: dict[str, Any] = {
        "benchmark": "routing",
        "name": name,
        "quick": bool(quick),
        "command": report.command_line("routing", argv),
        "machine": report.machine(),
        "workload": workload,
        "server_cpus": server_cpus,
        "load_cpus": load_cpus,
        "rounds": args.rounds,
        "wall_s": round(time.monotonic() - started, 1),
        "notes": notes,
        "runs": runs,
    }
    written = report.publish(args.out, name, doc, routing_results.DRAWING)
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    report.print_written(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
