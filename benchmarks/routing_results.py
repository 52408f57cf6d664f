"""The routing benchmark's results: one row per policy over rounds, figures, report and plot.

A round plays the whole workload through every policy, one after another from empty caches;
a policy's row holds the median of each figure over rounds and its spread.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import charts, goals, report

POLICIES = ("cache_aware", "least_outstanding", "round_robin", "sglang-router")
LABELS = {
    "cache_aware": "Warmgate cache_aware",
    "least_outstanding": "Warmgate least_outstanding",
    "round_robin": "Warmgate round_robin",
    "sglang-router": "SGLang router 0.3.2 (cache_aware)",
}
# The per-run figures a row summarizes: (name in the row, how to read it from one run).
FIGURES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "ttft_p50_ms": lambda run: run["ttft_ms"].get("p50"),
    "ttft_p99_ms": lambda run: run["ttft_ms"].get("p99"),
    "e2e_p50_ms": lambda run: run["e2e_ms"].get("p50"),
    "req_per_s": lambda run: run["req_per_s"],
    "output_tok_per_s": lambda run: run["output_tok_per_s"],
    "cache_hit_rate": lambda run: run["cache_hit_rate"],
}


def runs_of(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every (policy, round) run; results from before rounds hold one run per policy."""
    if "runs" in doc:
        return list(doc["runs"])
    return [dict(result, round=0) for result in doc["results"]]


def aggregate(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for policy in POLICIES:
        mine = [r for r in runs if r["policy"] == policy]
        if not mine:
            continue
        row: dict[str, Any] = {"policy": policy, "rounds": len(mine), "spread": {}}
        for name, read in FIGURES.items():
            values = [float(v) for v in (read(r) for r in mine) if v is not None]
            row[name] = statistics.median(values) if values else None
            row["spread"][name] = [min(values), max(values)] if values else None
        row["requests"] = sum(r["requests"] for r in mine)
        row["ok"] = sum(r["ok"] for r in mine)
        row["errors"] = sum(sum(r["errors"].values()) for r in mine)
        per_replica = [r["requests_per_replica"] for r in mine]
        row["requests_per_replica"] = [sum(column) for column in zip(*per_replica, strict=True)]
        rows.append(row)
    return rows


def _per_round(runs: Sequence[Mapping[str, Any]], policy: str, name: str) -> dict[int, float]:
    read = FIGURES[name]
    found = {}
    for run in runs:
        value = read(run) if run["policy"] == policy else None
        if value is not None:
            found[run["round"]] = float(value)
    return found


def figures(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    aware = _per_round(runs, "cache_aware", "ttft_p50_ms")
    rr = _per_round(runs, "round_robin", "ttft_p50_ms")
    found = [
        goals.figure(
            "cache_aware TTFT p50 ÷ round_robin's",
            [aware[r] / rr[r] for r in sorted(aware) if rr.get(r)],
            at_most=0.5,
        )
    ]
    router = list(_per_round(runs, "sglang-router", "cache_hit_rate").values())
    hits = list(_per_round(runs, "cache_aware", "cache_hit_rate").values())
    if router:
        theirs = statistics.median(router)
        found.append(goals.figure("cache_aware prefix-cache hit rate", hits, at_least=theirs,
                                  goal=f"≥ SGLang router's {theirs:.3f}"))  # fmt: skip
    else:
        found.append(goals.figure("cache_aware prefix-cache hit rate", hits))
    return goals.present(found)


def rebuild(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document with its rows and figures computed afresh from its runs."""
    rebuilt = dict(doc)
    rebuilt.setdefault("quick", "--quick" in doc["command"].split())
    runs = runs_of(doc)
    rebuilt["runs"] = runs
    rebuilt["results"] = aggregate(runs)
    rebuilt["goals"] = figures(runs)
    rebuilt.setdefault("rounds", max((r["round"] for r in runs), default=0) + 1)
    return rebuilt


def render(doc: Mapping[str, Any]) -> str:
    w = doc["workload"]
    load = ", ".join(f"{x:.2f}" for x in doc["machine"]["load_average_at_start"])
    lines = goals.quick_banner(doc, "`python -m benchmarks.routing`")
    lines += [
        f"Command: `{doc['command']}`",
        "",
        f"Workload: {w['groups']} groups x {w['conversations_per_group']} conversations x "
        f"{w['turns']} turns, {w['system_tokens']}-token shared system prompt, "
        f"{w['question_tokens']}-token questions, {w['max_tokens']} output tokens, "
        f"{w['concurrency']} conversations at once; {w['replicas']} simulated replicas with "
        f"{w['kv_tokens_per_replica']:,} KV tokens each, time scale {w['time_scale']}; "
        f"{doc['rounds']} round(s), each policy from empty caches. Gateway pinned to CPU "
        f"{doc['server_cpus']}, load generator and simulator to CPU {doc['load_cpus']}; load "
        f"average at start {load}.",
        "",
        goals.heading(doc["rounds"]),
        "",
        goals.table(doc["goals"], bool(doc.get("quick"))),
        "",
        f"![Routing policies: TTFT, prefix-cache hit rate, throughput]"
        f"({doc.get('name', 'routing')}.png)",
        "",
    ]
    if doc["notes"]:
        lines += [*(f"- {note}" for note in doc["notes"]), ""]
    headers = ["policy", "TTFT p50 ms", "TTFT p99 ms", "E2E p50 ms", "req/s", "output tok/s",
               "cache-hit rate", "requests per replica", "errors"]  # fmt: skip
    table = [
        [LABELS[r["policy"]], r["ttft_p50_ms"], r["ttft_p99_ms"], r["e2e_p50_ms"],
         r["req_per_s"], r["output_tok_per_s"], r["cache_hit_rate"],
         " / ".join(str(n) for n in r["requests_per_replica"]), r["errors"]]
        for r in doc["results"]
    ]  # fmt: skip
    lines += [
        "<details><summary>Every policy: TTFT, end-to-end time, throughput, cache hits, "
        "requests per replica</summary>",
        "",
        "Medians over rounds; requests per replica summed over rounds.",
        "",
        report.markdown_table(headers, table),
        "",
        "</details>",
    ]
    return "\n".join(lines).rstrip() + "\n"


PANELS = (
    ("ttft_p50_ms", "TTFT p50 (lower is better)", "ms"),
    ("ttft_p99_ms", "TTFT p99 (lower is better)", "ms"),
    ("cache_hit_rate", "prefix-cache hit rate (higher is better)", "cached ÷ prompt tokens"),
    ("req_per_s", "requests/s (higher is better)", "requests per second"),
)


def plot(doc: Mapping[str, Any], path: Path) -> None:
    plt = report.pyplot()
    rows = [r["policy"] for r in doc["results"]]
    by_policy = {r["policy"]: r for r in doc["results"]}
    labels = {p: LABELS[p].replace(" (", "\n(") for p in rows}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(16, 1.2 + 0.55 * len(rows)), sharey=True)
    series = ["median"]
    colors = {"median": "#4292c6"}
    cut = False
    for i, (ax, (field, title, unit)) in enumerate(zip(axes, PANELS, strict=True)):
        bars = {}
        for policy in rows:
            row = by_policy[policy]
            spread = row["spread"].get(field) or (None, None)
            bars[policy, "median"] = charts.Bar(row[field], spread[0], spread[1])
        panel = charts.Panel(title, unit, bars)
        cut = charts.draw_panel(ax, panel, rows, series, colors, row_labels=labels) or cut
        if field == "cache_hit_rate":
            ax.set_xlim(0, 1.15)
        if i:
            ax.tick_params(axis="y", labelleft=False)
    caption = [
        charts.rounds_caption(doc["rounds"]),
        "Each round starts from empty caches. Linear axes.",
        charts.CUT_CAPTION if cut else "",
    ]
    charts.save_figure(
        fig, path, caption, quick=bool(doc.get("quick")), caption_y=0.01, rect=(0, 0.06, 1, 1)
    )


DRAWING = report.Drawing(rebuild, render, plot)
