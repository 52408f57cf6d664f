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
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.gateway import BENCH_KEY, REPO_ROOT, warmgate_process
from benchmarks.loadgen import Workload, chat_body, run_subprocess
from benchmarks.peers import PEERS
from benchmarks.processes import ServerProcess, chat_probe, free_port, free_port_range
from benchmarks.upstreams import canned_process, replica_urls, sim_process

MODEL = "demo"
ALL_TARGETS = ("direct", "bare", "warmgate", "warmgate-off", *PEERS)
LABELS = {
    "direct": "direct (no proxy)",
    "bare": "bare Litestar + aiohttp relay",
    "warmgate": "Warmgate, every feature on",
    "warmgate-off": "Warmgate, keys/limits/ledger off",
    **{key: peer.name for key, peer in PEERS.items()},
}
MODES = ("non-stream", "stream")


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
    notes: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run: < 2 minutes")
    parser.add_argument("--targets", help=f"comma-separated subset of {','.join(ALL_TARGETS)}")
    parser.add_argument("--peers", action="store_true", help="install missing peers first")
    parser.add_argument("--concurrency", help="comma-separated, default 1,16,64 (quick: 1,64)")
    parser.add_argument("--modes", default="non-stream,stream")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 4, quick 1.5)")
    parser.add_argument("--inflight", type=int, help="memory check: requests held in flight")
    parser.add_argument("--hold-ms", type=int, help="memory check: upstream hold (default 4000)")
    parser.add_argument("--warmup", type=int, help="requests before each run (default 100)")
    parser.add_argument("--upstream", choices=["canned", "sim"], default="canned")
    parser.add_argument("--server-cpus", help="CPUs of the servers under test (default: 1)")
    parser.add_argument("--load-cpus", help="CPUs of load generator + upstream (default: 0)")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--keep-logs", action="store_true", help="keep server logs and configs")
    parser.add_argument("--name", help="result file stem (default overhead / overhead-quick)")
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    two_cpus = (os.cpu_count() or 1) >= 2
    default_conc = "1,64" if args.quick else "1,16,64"
    return Plan(
        concurrencies=[int(c) for c in (args.concurrency or default_conc).split(",")],
        modes=[m for m in args.modes.split(",") if m in MODES],
        rounds=args.rounds or (1 if args.quick else 3),
        duration_s=args.duration or (1.5 if args.quick else 4.0),
        warmup=args.warmup if args.warmup is not None else (20 if args.quick else 100),
        inflight=args.inflight if args.inflight is not None else (200 if args.quick else 1000),
        hold_ms=args.hold_ms or (1500 if args.quick else 4000),
        server_cpus=args.server_cpus or ("1" if two_cpus else None),
        load_cpus=args.load_cpus or ("0" if two_cpus else None),
    )


def choose_targets(args: argparse.Namespace, plan: Plan) -> list[str]:
    if args.targets:
        wanted = [t for t in args.targets.split(",") if t]
        unknown = set(wanted) - set(ALL_TARGETS)
        if unknown:
            raise SystemExit(f"unknown targets: {', '.join(sorted(unknown))}")
    elif args.quick and not args.peers:
        wanted = ["direct", "bare", "warmgate", "warmgate-off"]
    else:
        wanted = list(ALL_TARGETS)
    chosen = []
    for key in wanted:
        peer = PEERS.get(key)
        if peer is not None and not peer.installed():
            if args.peers:
                peer.install()
            else:
                plan.notes.append(
                    f"{peer.name} skipped: not installed in {peer.venv_dir} "
                    "(rerun with --peers to install it)"
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
        elif key in ("warmgate", "warmgate-off"):
            process = warmgate_process(
                key,
                workdir,
                port=port,
                model=MODEL,
                backends=[upstream],
                cpus=plan.server_cpus,
                features=key == "warmgate",
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


def measure_memory(
    targets: Sequence[Target], upstream: str, plan: Plan, workdir: Path
) -> dict[str, Any]:
    """Peak resident memory of each server with `plan.inflight` requests held in flight."""
    results: dict[str, Any] = {"inflight": plan.inflight, "hold_ms": plan.hold_ms, "targets": {}}
    set_delay = f"{upstream}/_canned/delay?ms="
    urllib.request.urlopen(set_delay + str(plan.hold_ms), timeout=5).close()  # noqa: S310
    try:
        for target in targets:
            if target.process is None or not target.process.alive():
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
    finally:
        urllib.request.urlopen(set_delay + "0", timeout=5).close()  # noqa: S310
    return results


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def aggregate(runs: Sequence[Run], keys: Sequence[str], plan: Plan) -> list[dict[str, Any]]:
    """One row per (target, mode, concurrency): medians over rounds; added = minus direct."""
    by_cell: dict[tuple[str, str, int], list[Run]] = {}
    for run in runs:
        by_cell.setdefault((run.target, run.mode, run.concurrency), []).append(run)
    rows: list[dict[str, Any]] = []
    for mode in plan.modes:
        for concurrency in plan.concurrencies:
            direct = {r.round: r for r in by_cell.get(("direct", mode, concurrency), [])}
            bare = by_cell.get(("bare", mode, concurrency), [])
            bare_rps = _median([r.summary["req_per_s"] for r in bare])
            for key in keys:
                cell = by_cell.get((key, mode, concurrency), [])
                if not cell:
                    continue
                metric = "ttft_ms" if mode == "stream" else "e2e_ms"

                def stat(run: Run, name: str, pct: str) -> float | None:
                    value = run.summary[name].get(pct)
                    return float(value) if value is not None else None

                added_p50: list[float] = []
                added_p99: list[float] = []
                for run in cell:
                    base = direct.get(run.round)
                    if base is None or key == "direct":
                        continue
                    for added, pct in ((added_p50, "p50"), (added_p99, "p99")):
                        mine, theirs = stat(run, metric, pct), stat(base, metric, pct)
                        if mine is not None and theirs is not None:
                            added.append(mine - theirs)
                ok = sum(r.summary["ok"] for r in cell)
                cpu = [r.server_cpu_s for r in cell if r.server_cpu_s is not None]
                cpu_ms = 1000 * sum(cpu) / ok if cpu and ok else None
                rps = _median([r.summary["req_per_s"] for r in cell])
                rows.append(
                    {
                        "target": key,
                        "mode": mode,
                        "concurrency": concurrency,
                        "req_per_s": rps,
                        "p50_ms": _median([stat(r, metric, "p50") for r in cell]),
                        "p99_ms": _median([stat(r, metric, "p99") for r in cell]),
                        "e2e_p50_ms": _median([stat(r, "e2e_ms", "p50") for r in cell]),
                        "added_p50_ms": _median(added_p50),
                        "added_p99_ms": _median(added_p99),
                        "server_cpu_ms_per_req": cpu_ms,
                        "req_per_cpu_s": 1000 / cpu_ms if cpu_ms else None,
                        "vs_bare": rps / bare_rps if rps and bare_rps else None,
                        "rss_mb": max((r.rss_mb for r in cell if r.rss_mb), default=None),
                        "errors": sum(sum(r.summary["errors"].values()) for r in cell),
                        "requests": sum(r.summary["requests"] for r in cell),
                    }
                )
    return rows


def goals(rows: Sequence[dict[str, Any]], memory: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issues' goals, each with the measured figure and whether it was reached."""

    def row(target: str, mode: str, concurrency: int) -> dict[str, Any] | None:
        for r in rows:
            if (r["target"], r["mode"], r["concurrency"]) == (target, mode, concurrency):
                return r
        return None

    found: list[dict[str, Any]] = []

    def check(goal: str, value: float | None, target: float, higher_is_better: bool) -> None:
        if value is None:
            return
        met = value >= target if higher_is_better else value <= target
        found.append({"goal": goal, "measured": round(value, 3), "met": met})

    top = max((r["concurrency"] for r in rows), default=0)
    for mode in MODES:
        wg1 = row("warmgate", mode, 1)
        check(
            f"added p50 at c=1, {mode} (ms, ≤ 1)", wg1["added_p50_ms"] if wg1 else None, 1.0, False
        )
        wg, bare = row("warmgate", mode, top), row("bare", mode, top)
        if wg and bare and bare["req_per_s"]:
            ratio = wg["req_per_s"] / bare["req_per_s"]
            check(f"req/s vs bare relay at c={top}, {mode} (≥ 0.8)", ratio, 0.8, True)
        off = row("warmgate-off", mode, top)
        if wg and off and off["req_per_s"]:
            ratio = wg["req_per_s"] / off["req_per_s"]
            check(f"keys+limits+ledger on/off req/s at c={top}, {mode} (≥ 0.9)", ratio, 0.9, True)
        lite = row("litellm", mode, top)
        if wg and lite and lite["req_per_s"]:
            ratio = wg["req_per_s"] / lite["req_per_s"]
            check(f"req/s vs LiteLLM at c={top}, {mode} (≥ 20)", ratio, 20.0, True)
        router = row("sglang-router", mode, top)
        if mode == "non-stream" and wg and router and router["req_per_cpu_s"]:
            ratio = (wg["req_per_cpu_s"] or 0) / router["req_per_cpu_s"]
            check(f"req per CPU-second vs SGLang router at c={top} (≥ 0.35)", ratio, 0.35, True)
        if mode == "stream":
            for r in rows:
                if r["target"] != "sglang-router" or r["mode"] != "stream":
                    continue
                mine = row("warmgate", "stream", r["concurrency"])
                if mine and mine["added_p50_ms"] is not None and r["added_p50_ms"] is not None:
                    check(
                        f"stream added p50 below SGLang router's ({r['added_p50_ms']:.2f} ms) "
                        f"at c={r['concurrency']} (ms)",
                        mine["added_p50_ms"],
                        r["added_p50_ms"],
                        False,
                    )
    if memory:
        held = memory["targets"].get("warmgate")
        if held:
            check(
                f"resident MB with {memory['inflight']} requests in flight (≤ 150)",
                held["peak_rss_mb"],
                150.0,
                False,
            )
    return found


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [f"Command: `{result['command']}`", ""]
    lines.append(
        f"Upstream: {result['upstream']}; servers pinned to CPU {result['server_cpus']}, "
        f"load generator and upstream to CPU {result['load_cpus']}; {result['rounds']} "
        f"interleaved round(s) of {result['duration_s']} s per cell; machine: "
        f"{result['machine']['cpus']} x {result['machine']['cpu_model']}, load average at "
        f"start {', '.join(f'{x:.2f}' for x in result['machine']['load_average_at_start'])}."
    )
    lines.append("")
    for mode in result["modes"]:
        metric = "TTFT" if mode == "stream" else "latency"
        headers = ["target", "c", "req/s", f"{metric} p50 ms", f"{metric} p99 ms",
                   "added p50 ms", "added p99 ms", "server CPU ms/req", "req per CPU-s",
                   "x bare", "RSS MB", "errors"]  # fmt: skip
        table = [
            [
                LABELS[r["target"]],
                r["concurrency"],
                r["req_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["added_p50_ms"],
                r["added_p99_ms"],
                r["server_cpu_ms_per_req"],
                r["req_per_cpu_s"],
                r["vs_bare"],
                r["rss_mb"],
                r["errors"],
            ]
            for r in rows
            if r["mode"] == mode
        ]
        lines += [f"**{mode}**", "", report.markdown_table(headers, table), ""]
    memory = result.get("memory")
    if memory:
        lines.append(
            f"**Resident memory with {memory['inflight']} requests held in flight** "
            f"(upstream holds each {memory['hold_ms']} ms)"
        )
        lines.append("")
        table = [
            [LABELS[k], v["idle_rss_mb"], v["peak_rss_mb"], v["ok"], sum(v["errors"].values())]
            for k, v in memory["targets"].items()
        ]
        headers = ["target", "idle RSS MB", "peak RSS MB", "ok", "errors"]
        lines += [report.markdown_table(headers, table), ""]
    if result["goals"]:
        lines += ["**Goals**", ""]
        table = [
            [g["goal"], g["measured"], "yes" if g["met"] else "**no**"] for g in result["goals"]
        ]
        lines += [report.markdown_table(["goal", "measured", "met"], table), ""]
    for note in result["notes"]:
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    plt = report.pyplot()
    modes = result["modes"]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.6), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        keys = [k for k in ALL_TARGETS if any(r["target"] == k for r in result["rows"])]
        concurrencies = sorted({r["concurrency"] for r in result["rows"]})
        width = 0.8 / max(len(keys), 1)
        for i, key in enumerate(keys):
            values = []
            for c in concurrencies:
                match = [r for r in result["rows"] if (r["target"], r["mode"], r["concurrency"])
                         == (key, mode, c)]  # fmt: skip
                values.append(match[0]["req_per_s"] or 0 if match else 0)
            xs = [j + i * width for j in range(len(concurrencies))]
            ax.bar(xs, values, width, label=LABELS[key])
        ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(concurrencies))])
        ax.set_xticklabels([f"c={c}" for c in concurrencies])
        ax.set_yscale("log")
        ax.set_ylabel("requests/s (log)")
        ax.set_title(f"{mode}: requests/s, one core per server")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    keys = choose_targets(args, plan)
    name = args.name or ("overhead-quick" if args.quick else "overhead")
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-overhead-"))
    print(f"overhead: targets {', '.join(keys)}; logs in {workdir}", file=sys.stderr)
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
        for mode in plan.modes:
            for concurrency in plan.concurrencies:
                for round_ in range(plan.rounds):
                    shift = round_ % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        runs.append(
                            measure(
                                target, mode, concurrency, round_=round_, plan=plan, workdir=workdir
                            )
                        )
        if plan.inflight and args.upstream == "canned":
            memory = measure_memory(targets, upstream, plan, workdir)
    rows = aggregate(runs, keys, plan)
    plan.notes.append(
        "direct is bounded by the Python load generator sharing its CPU with the upstream, "
        "not by the upstream; req per CPU-s is the server's own capacity on one core."
    )
    result: dict[str, Any] = {
        "benchmark": "overhead",
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
        "rows": rows,
        "memory": memory,
        "goals": goals(rows, memory),
        "notes": plan.notes,
        "runs": [run.__dict__ for run in runs],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / f"{name}.json", result)
    (args.out / f"{name}.md").write_text(render(result))
    plot(result, args.out / f"{name}.png")
    print(render(result))
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
