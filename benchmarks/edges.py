"""Several edges in front of the same replicas, and two regions: does routing still agree?

An L4 load balancer in front of N edges sends each turn of a conversation to a random edge.
Each edge routes on its own (no shared state); what keeps a conversation on the replica that
holds its KV cache is that every edge ranks replicas alike (rendezvous hashing of the
conversation's first characters, `[routing] hash_prefix_chars`). Measured, for `cache_aware`
and `consistent_hash`, one edge against N edges (`warmgate serve` processes sharing one
ledger) over M simulated replicas: follow-up turns whose prompt was at least half cached (the
replicas' `usage.prompt_tokens_details.cached_tokens`), and TTFT p50/p90.

Then two regions: the edges are in region "near"; half the replicas are near (no added
delay) and half "far" (`warmgate sim --network-delay-ms`, default 40 ms). Measured: the share
of requests served in the edges' own region and TTFT, with `[server] region` set and unset.
Shared limits behind a Redis with injected latency are measured by benchmarks/limits.py.

    python -m benchmarks.edges            # full: 3 rounds, 24 conversations x 5 turns
    python -m benchmarks.edges --quick    # one round, < 2 minutes

Writes benchmarks/results/edges.{json,md,png} (quick: edges-quick.*).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import charts, goals, report
from benchmarks.gateway import BENCH_KEY, warmgate_process
from benchmarks.loadgen import Conversation, Workload, run_subprocess
from benchmarks.processes import ServerProcess, chat_probe, free_port, free_port_range
from benchmarks.progress import CellCounter
from benchmarks.routing import flush_caches, replica_stats
from benchmarks.stats import Outcome, percentile
from benchmarks.upstreams import replica_urls, sim_process
from benchmarks.workloads import shared_prefix_conversations

MODEL = "demo"
POLICIES = ("cache_aware", "consistent_hash")
NEAR, FAR = "near", "far"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.edges", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round: < 2 minutes")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument("--edges", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--conversations", type=int, default=24)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--system-tokens", type=int, default=1024)
    parser.add_argument("--question-tokens", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kv-tokens", type=int, default=16384, help="KV cache per replica")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--rtt-ms", type=float, default=40.0, help="far region's added delay")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--ledger", help="ledger URL shared by the edges (default: one SQLite)")
    parser.add_argument("--server-cpus", help="edges' CPUs (default: 1)")
    parser.add_argument("--load-cpus", help="load generator + simulator CPUs (default: 0)")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--name", help="result file stem")
    return parser.parse_args(argv)


@contextlib.contextmanager
def edges(
    count: int,
    backends: Sequence[str],
    workdir: Path,
    *,
    policy: str,
    ledger_url: str,
    cpus: str | None,
    region: str | None = None,
    backend_regions: Sequence[str | None] = (),
) -> Iterator[list[str]]:
    """`count` edges over the same backends and ledger; yields their base URLs once ready."""
    with contextlib.ExitStack() as stack:
        urls = []
        for n in range(count):
            port = free_port()
            process: ServerProcess = warmgate_process(
                f"edge{n}-{policy}", workdir, port=port, model=MODEL, backends=backends,
                cpus=cpus, policy=policy, region=region, backend_regions=backend_regions,
                ledger_url=ledger_url,
            )  # fmt: skip
            stack.enter_context(process)
            urls.append(f"http://127.0.0.1:{port}")
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_KEY}"}
            process.wait_until(urls[-1] + "/v1/chat/completions", chat_probe(MODEL), headers, 120)
        yield urls


def play(
    urls: Sequence[str],
    backends: Sequence[str],
    conversations: list[Conversation],
    *,
    concurrency: int,
    workdir: Path,
    label: str,
    cpus: str | None,
) -> dict[str, Any]:
    """One run of the workload, each request to a random one of `urls`, from empty caches."""
    flush_caches(backends)
    before = replica_stats(backends)
    summary = run_subprocess(
        ",".join(urls), BENCH_KEY, Workload(conversations=conversations), workdir=workdir,
        concurrency=concurrency, label=label, cpus=cpus, raw=True, timeout_s=1800,
    )  # fmt: skip
    after = replica_stats(backends)
    outcomes = msgspec.convert(summary.pop("outcomes"), list[Outcome])
    follow_ups = [o for o in outcomes if o.turn >= 2 and o.ok]
    cached = [o for o in follow_ups if o.prompt_tokens and o.cached_tokens >= o.prompt_tokens / 2]
    ttfts = sorted(o.ttft_s for o in outcomes if o.ok and o.ttft_s is not None)
    return {
        "requests": summary["requests"],
        "ok": summary["ok"],
        "errors": sum(summary["errors"].values()),
        "follow_ups": len([o for o in outcomes if o.turn >= 2]),
        "follow_ups_cached": len(cached),
        "cache_hit_rate": summary["cache_hit_rate"],
        "ttft_p50_ms": round(percentile(ttfts, 50) * 1000, 2) if ttfts else None,
        "ttft_p90_ms": round(percentile(ttfts, 90) * 1000, 2) if ttfts else None,
        "requests_per_replica": [
            a["requests_received"] - b["requests_received"]
            for a, b in zip(after, before, strict=True)
        ],
    }


def median_of(runs: Sequence[Mapping[str, Any]], field: str) -> float | None:
    values = [float(r[field]) for r in runs if r.get(field) is not None]
    return statistics.median(values) if values else None


def rows_of(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label in dict.fromkeys(r["label"] for r in runs):
        mine = [r for r in runs if r["label"] == label]
        row: dict[str, Any] = {"label": label, "rounds": len(mine), "spread": {}}
        for field in ("follow_ups_cached", "ttft_p50_ms", "ttft_p90_ms", "local_share"):
            values = [float(r[field]) for r in mine if r.get(field) is not None]
            row[field] = statistics.median(values) if values else None
            row["spread"][field] = [min(values), max(values)] if values else None
        row["follow_ups"] = mine[0]["follow_ups"]
        row["errors"] = sum(r["errors"] for r in mine)
        row["requests_per_replica"] = [
            sum(c) for c in zip(*(r["requests_per_replica"] for r in mine), strict=True)
        ]
        rows.append(row)
    return rows


def figures(runs: Sequence[Mapping[str, Any]], edge_count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any] | None] = []
    for policy in POLICIES:
        one = {r["round"]: r for r in runs if r["label"] == f"{policy}, 1 edge"}
        many = {r["round"]: r for r in runs if r["label"] == f"{policy}, {edge_count} edges"}
        rounds = sorted(set(one) & set(many))
        found.append(goals.figure(
            f"{policy}: {edge_count} edges' follow-ups ≥ 50 % cached ÷ one edge's",
            [many[n]["follow_ups_cached"] / max(one[n]["follow_ups_cached"], 1) for n in rounds],
            at_least=0.95,
        ))  # fmt: skip
        found.append(goals.figure(
            f"{policy}: {edge_count} edges' TTFT p50 ÷ one edge's",
            [many[n]["ttft_p50_ms"] / one[n]["ttft_p50_ms"] for n in rounds],
            at_most=1.10,
        ))  # fmt: skip
    found.append(goals.figure(
        "two regions: requests served in the edges' own region",
        [r["local_share"] for r in runs if r["label"] == "regions: [server] region set"],
        at_least=0.99,
    ))  # fmt: skip
    return goals.present(found)


def rebuild(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document with its rows and figures computed afresh from its runs."""
    rebuilt = dict(doc)
    rebuilt["results"] = rows_of(doc["runs"])
    rebuilt["goals"] = figures(doc["runs"], doc["workload"]["edges"])
    return rebuilt


def render(doc: Mapping[str, Any]) -> str:
    w = doc["workload"]
    lines = goals.quick_banner(doc, "`python -m benchmarks.edges`")
    lines += [
        f"Command: `{doc['command']}`",
        "",
        f"Workload: {w['conversations']} conversations x {w['turns']} turns (a "
        f"{w['system_tokens']}-token system prompt of its own each, {w['question_tokens']}-token "
        f"questions, {w['max_tokens']} output tokens), {w['concurrency']} at once, each turn to "
        f"a random edge; {w['replicas']} simulated replicas with {w['kv_tokens']:,} KV tokens "
        f"each, time scale {w['time_scale']}. Edges share one ledger ({doc['ledger']}). Two "
        f"regions: {w['replicas'] // 2} replicas near the edges, {w['replicas'] // 2} with "
        f"{w['rtt_ms']:g} ms added network delay. Edges pinned to CPU {doc['server_cpus']}, "
        f"load generator and simulator to CPU {doc['load_cpus']}.",
        "",
        goals.heading(doc["rounds"]),
        "",
        goals.table(doc["goals"], bool(doc.get("quick"))),
        "",
        f"![Edges: cached follow-ups, TTFT, requests in region]({doc['name']}.png)",
        "",
        "Redis with injected latency (shared limits across edges) is measured by "
        "`python -m benchmarks.limits`: see [limits.md](limits.md).",
        "",
    ]
    headers = ["run", "follow-ups ≥ 50 % cached", "TTFT p50 ms", "TTFT p90 ms",
               "own region", "requests per replica", "errors"]  # fmt: skip
    table = [
        [r["label"], f"{r['follow_ups_cached']:g} / {r['follow_ups']}", r["ttft_p50_ms"],
         r["ttft_p90_ms"], "" if r["local_share"] is None else f"{r['local_share']:.1%}",
         " / ".join(str(n) for n in r["requests_per_replica"]), r["errors"]]
        for r in doc["results"]
    ]  # fmt: skip
    lines += ["Medians over rounds; requests per replica summed over rounds.", ""]
    lines += [report.markdown_table(headers, table)]
    return "\n".join(lines).rstrip() + "\n"


PANELS = (
    ("follow_ups_cached", "follow-ups ≥ 50 % cached (higher is better)", "follow-up turns"),
    ("ttft_p50_ms", "TTFT p50 (lower is better)", "ms"),
    ("ttft_p90_ms", "TTFT p90 (lower is better)", "ms"),
    ("local_share", "requests in the edges' region", "share of requests"),
)


def plot(doc: Mapping[str, Any], path: Path) -> None:
    plt = report.pyplot()
    rows = [r["label"] for r in doc["results"]]
    by_label = {r["label"]: r for r in doc["results"]}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(17, 1.4 + 0.55 * len(rows)), sharey=True)
    cut = False
    for i, (ax, (field, title, unit)) in enumerate(zip(axes, PANELS, strict=True)):
        bars = {}
        for label in rows:
            row = by_label[label]
            spread = row["spread"].get(field) or (None, None)
            bars[label, "median"] = charts.Bar(row[field], spread[0], spread[1], "one region only")
        panel = charts.Panel(title, unit, bars)
        cut = charts.draw_panel(ax, panel, rows, ["median"], {"median": "#4292c6"}) or cut
        if field == "local_share":
            ax.set_xlim(0, 1.3)
        if i:
            ax.tick_params(axis="y", labelleft=False)
    caption = [charts.rounds_caption(doc["rounds"]), "Each run starts from empty caches.",
               charts.CUT_CAPTION if cut else ""]  # fmt: skip
    if doc.get("quick"):
        charts.mark_quick(fig)
    fig.text(0.5, 0.01, " ".join(c for c in caption if c), ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:  # one scenario after another
    args = parse_args(argv)
    two_cpus = (os.cpu_count() or 1) >= 2
    server_cpus = args.server_cpus or ("1" if two_cpus else None)
    load_cpus = args.load_cpus or ("0" if two_cpus else None)
    rounds = args.rounds or (1 if args.quick else 3)
    policies = [p for p in args.policies.split(",") if p]
    conversations = shared_prefix_conversations(
        MODEL, groups=args.conversations, conversations_per_group=1, turns=args.turns,
        system_tokens=args.system_tokens, question_tokens=args.question_tokens,
        max_tokens=args.max_tokens,
    )  # fmt: skip
    name = args.name or ("edges-quick" if args.quick else "edges")
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-edges-"))
    ledger_url = args.ledger or f"sqlite:///{workdir / 'shared-ledger.sqlite3'}"
    print(f"[edges] logs in {workdir}", file=sys.stderr)
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    half = args.replicas // 2
    sim_extra = ["--kv-tokens", str(args.kv_tokens)]
    with contextlib.ExitStack() as stack:
        port = free_port_range(args.replicas)
        sim = stack.enter_context(sim_process(
            workdir, port=port, replicas=args.replicas, model=MODEL, time_scale=args.time_scale,
            cpus=load_cpus, extra=sim_extra,
        ))  # fmt: skip
        backends = replica_urls(port, args.replicas)
        far_port = free_port_range(half)
        stack.enter_context(sim_process(
            workdir, port=far_port, replicas=half, model=MODEL, time_scale=args.time_scale,
            cpus=load_cpus, extra=[*sim_extra, "--network-delay-ms", str(args.rtt_ms)],
            name="sim-far",
        ))  # fmt: skip
        far_backends = replica_urls(far_port, half)
        for url in [*backends, *far_backends]:
            sim.wait_until(url + "/health", timeout_s=60)
        counter = CellCounter("edges", [1.0] * (rounds * (2 * len(policies) + 2)))
        for round_ in range(rounds):
            for policy in policies:
                for count in (1, args.edges):
                    label = f"{policy}, {count} edge{'s' if count > 1 else ''}"
                    counter.start(f"{label}, round {round_ + 1}")
                    with edges(count, backends, workdir, policy=policy, ledger_url=ledger_url,
                               cpus=server_cpus) as urls:  # fmt: skip
                        run = play(urls, backends, conversations, concurrency=args.concurrency,
                                   workdir=workdir, label=label, cpus=load_cpus)  # fmt: skip
                    runs.append(dict(run, label=label, round=round_, local_share=None))
                    counter.finish()
            regional = [*backends[:half], *far_backends]
            regions = [NEAR] * half + [FAR] * half
            for region in (NEAR, None):
                label = "regions: [server] region " + ("set" if region else "unset")
                counter.start(f"{label}, round {round_ + 1}")
                with edges(args.edges, regional, workdir, policy="cache_aware",
                           ledger_url=ledger_url, cpus=server_cpus, region=region,
                           backend_regions=regions) as urls:  # fmt: skip
                    run = play(urls, regional, conversations, concurrency=args.concurrency,
                               workdir=workdir, label=label, cpus=load_cpus)  # fmt: skip
                served = run["requests_per_replica"]
                run["local_share"] = round(sum(served[:half]) / max(sum(served), 1), 4)
                runs.append(dict(run, label=label, round=round_))
                counter.finish()
        counter.close()
    workload = {
        "conversations": args.conversations, "turns": args.turns,
        "system_tokens": args.system_tokens, "question_tokens": args.question_tokens,
        "max_tokens": args.max_tokens, "concurrency": args.concurrency,
        "replicas": args.replicas, "kv_tokens": args.kv_tokens, "time_scale": args.time_scale,
        "rtt_ms": args.rtt_ms, "edges": args.edges,
    }  # fmt: skip
    doc: dict[str, Any] = {
        "benchmark": "edges",
        "name": name,
        "quick": bool(args.quick),
        "command": report.command_line("edges", argv),
        "machine": report.machine(),
        "workload": workload,
        "ledger": "PostgreSQL" if ledger_url.startswith("postgresql") else "one SQLite file",
        "server_cpus": server_cpus,
        "load_cpus": load_cpus,
        "rounds": rounds,
        "wall_s": round(time.monotonic() - started, 1),
        "runs": runs,
    }
    doc = rebuild(doc)
    written = report.write_results(args.out, name, doc, render, plot)
    print(render(doc))
    shutil.rmtree(workdir, ignore_errors=True)
    report.print_written(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
