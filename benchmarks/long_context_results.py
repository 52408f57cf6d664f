"""The long-context benchmark's results: rows per prompt length, figures, report and plot.

A row pools a cell's requests over every round (direct and through Warmgate) and keeps, per
round, the time to first token that Warmgate added in that round, so the report shows the
spread from round to round as well as the pooled figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import charts, goals, report
from benchmarks.stats import Outcome, summarize

TARGETS = ("direct", "warmgate")
Cell = tuple[str, int, int, int]  # target, prompt tokens, concurrency, round
# The time to first token Warmgate may add at the longest prompt, c=1.
ADDED_TTFT_GOAL_MS = 5.0


def _mean_ms(outcomes: Sequence[Outcome]) -> float | None:
    ttfts = [o.ttft_s for o in outcomes if o.ok and o.ttft_s is not None]
    return 1000 * statistics.fmean(ttfts) if ttfts else None


def _median_ms(outcomes: Sequence[Outcome]) -> float | None:
    ttfts = [o.ttft_s for o in outcomes if o.ok and o.ttft_s is not None]
    return 1000 * statistics.median(ttfts) if ttfts else None


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def summarize_cells(
    outcomes: Mapping[Cell, list[Outcome]],
    walls: Mapping[Cell, float],
    lengths: Sequence[int],
    concurrencies: Sequence[int],
    rounds: int,
) -> list[dict[str, Any]]:
    rows = []
    for length in lengths:
        for concurrency in concurrencies:
            row: dict[str, Any] = {"length": length, "concurrency": concurrency}
            for target in TARGETS:
                cells = [(target, length, concurrency, r) for r in range(rounds)]
                pooled = [o for cell in cells for o in outcomes.get(cell, [])]
                summary = summarize(pooled, sum(walls.get(cell, 0.0) for cell in cells))
                row[target] = {k: summary[k] for k in (
                    "requests", "ok", "errors", "prompt_tokens", "ttft_ms", "itl_ms", "tpot_ms",
                    "e2e_ms", "output_tok_per_s")}  # fmt: skip
                ok = max(summary["ok"], 1)
                row[target]["mean_prompt_tokens"] = round(summary["prompt_tokens"] / ok)
            for pct in ("mean", "p50", "p90", "p99"):
                direct = row["direct"]["ttft_ms"].get(pct)
                gateway = row["warmgate"]["ttft_ms"].get(pct)
                row[f"added_ttft_{pct}_ms"] = _difference(gateway, direct)
            row["rounds"] = []
            for r in range(rounds):
                direct_round = outcomes.get(("direct", length, concurrency, r), [])
                gateway_round = outcomes.get(("warmgate", length, concurrency, r), [])
                row["rounds"].append({
                    "added_ttft_mean_ms": _difference(_mean_ms(gateway_round),
                                                      _mean_ms(direct_round)),
                    "added_ttft_p50_ms": _difference(_median_ms(gateway_round),
                                                     _median_ms(direct_round)),
                })  # fmt: skip
            rows.append(row)
    return rows


def per_round(row: Mapping[str, Any], name: str) -> list[float | None] | None:
    """`name` in each round, or None where the result predates per-round figures."""
    rounds = row.get("rounds")
    return None if rounds is None else [r.get(name) for r in rounds]


def figures(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The TTFT Warmgate adds at c=1, per prompt length; the goal applies at the longest."""
    rows = [r for r in doc["rows"] if r["concurrency"] == 1]
    longest = max((r["length"] for r in rows), default=0)
    found = []
    for row in rows:
        name = f"TTFT Warmgate adds, p50 (ms), {row['length']:,} prompt tokens, c=1"
        values = per_round(row, "added_ttft_p50_ms")
        at_most = ADDED_TTFT_GOAL_MS if row["length"] == longest else None
        measured = goals.figure(
            name, values if values is not None else [row["added_ttft_p50_ms"]], at_most=at_most
        )
        if measured is not None and values is None:
            measured["rounds"] = None  # pooled over rounds; no per-round figure recorded
        found.append(measured)
    return goals.present(found)


def rebuild(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document with its figures computed afresh from its rows."""
    rebuilt = dict(doc)
    rebuilt.setdefault("quick", "--quick" in doc["command"].split())
    rebuilt["rows"] = [_with_added_mean(row) for row in doc["rows"]]
    rebuilt["goals"] = figures(rebuilt)
    return rebuilt


def _with_added_mean(row: Mapping[str, Any]) -> dict[str, Any]:
    """Older results stored the added percentiles only; the mean follows from the two means."""
    found = dict(row)
    if "added_ttft_mean_ms" not in found:
        direct, gateway = (
            row["direct"]["ttft_ms"].get("mean"),
            row["warmgate"]["ttft_ms"].get("mean"),
        )
        found["added_ttft_mean_ms"] = _difference(gateway, direct)
    return found


def render(doc: Mapping[str, Any]) -> str:
    lines = goals.quick_banner(doc, "`python -m benchmarks.long_context`")
    lines += [f"Command: `{doc['command']}`", ""]
    load = ", ".join(f"{x:.2f}" for x in doc["machine"]["load_average_at_start"])
    lines.append(
        f"Backend: {doc['backend']}; Warmgate (every feature on) pinned to CPU "
        f"{doc['server_cpus']}, load generator and backend to CPU {doc['load_cpus']}; "
        f"{doc['max_tokens']} output tokens; {doc['rounds']} interleaved round(s); "
        f"load average at start {load}."
    )
    per_round_recorded = any(r.get("rounds") for r in doc["rows"])
    lines += ["", goals.heading(doc["rounds"] if per_round_recorded else None), ""]
    lines += [goals.table(doc["goals"], bool(doc.get("quick"))), ""]
    lines += [f"![Time to first token by prompt length, direct and through Warmgate]"
              f"({doc.get('name', 'long_context')}.png)", ""]  # fmt: skip
    ejections = doc.get("gateway_not_ready_before_batch")
    if ejections:
        lines += [
            f"- Before {ejections} Warmgate batch(es) the gateway had ejected the backend: its "
            "`/health_generate` probe waited behind the direct batch's long prefill while the "
            "gateway itself had nothing in flight. The benchmark waited for `/ready` each time.",
            "",
        ]
    lines += ["<details><summary>Every prompt length and concurrency: TTFT, ITL, TPOT, "
              "end-to-end</summary>", ""]  # fmt: skip
    headers = ["prompt tokens", "counted by backend", "c", "TTFT p50 direct",
               "TTFT p50 Warmgate", "added mean", "added p50", "added p99",
               "ITL p50 direct / Warmgate", "TPOT p50 direct / Warmgate",
               "E2E p50 direct / Warmgate", "errors"]  # fmt: skip
    table = []
    counted_by_backend = not doc["backend"].startswith("canned")
    for r in doc["rows"]:
        d, w = r["direct"], r["warmgate"]

        def pair(metric: str, d: dict[str, Any] = d, w: dict[str, Any] = w) -> str:
            a, b = d[metric].get("p50"), w[metric].get("p50")
            return f"{a:.1f} / {b:.1f}" if a is not None and b is not None else "-"

        errors = sum(d["errors"].values()) + sum(w["errors"].values())
        table.append([
            f"{r['length']:,}", f"{d['mean_prompt_tokens']:,}" if counted_by_backend else "-",
            r["concurrency"], d["ttft_ms"].get("p50"), w["ttft_ms"].get("p50"),
            r["added_ttft_mean_ms"], r["added_ttft_p50_ms"], r["added_ttft_p99_ms"],
            pair("itl_ms"), pair("tpot_ms"), pair("e2e_ms"), errors,
        ])  # fmt: skip
    lines += [
        "All times in ms, pooled over rounds. At c > 1 requests queue behind each other's "
        "prefill, so percentiles of a few requests move by whole prefill times with arrival "
        "order: read `added mean` there.",
        "",
        report.markdown_table(headers, table),
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def _added_bar(row: Mapping[str, Any], name: str) -> charts.Bar:
    """The median of the per-round figure with its min and max, as in the figures table;
    the pooled figure where the result predates per-round figures."""
    values = [v for v in per_round(row, name) or [] if v is not None]
    if not values:
        return charts.Bar(row.get(name))
    return charts.Bar(statistics.median(values), min(values), max(values))


def plot(doc: Mapping[str, Any], path: Path) -> None:
    plt = report.pyplot()
    concurrencies = sorted({r["concurrency"] for r in doc["rows"]})
    fig, axes = plt.subplots(
        1, 1 + len(concurrencies), figsize=(5.5 + 4.5 * len(concurrencies), 4.6), squeeze=False
    )
    lines_ax, bar_axes = axes[0][0], axes[0][1:]
    targets = (("direct", "o", "#636363", "direct"), ("warmgate", "s", "#e6550d", "Warmgate"))
    for c, dash in zip(concurrencies, ("-", "--", ":", "-."), strict=False):
        rows = [r for r in doc["rows"] if r["concurrency"] == c]
        xs = [r["length"] / 1000 for r in rows]
        for target, marker, color, label in targets:
            ys = [r[target]["ttft_ms"].get("p50") for r in rows]
            lines_ax.plot(xs, ys, linestyle=dash, marker=marker, color=color, markersize=4,
                          label=f"{label}, c={c}")  # fmt: skip
    lines_ax.set_xlim(left=0)
    lines_ax.set_ylim(bottom=0)
    lines_ax.set_xlabel("prompt tokens (thousands)", fontsize=8)
    lines_ax.set_ylabel("TTFT p50 (ms)", fontsize=8)
    lines_ax.set_title("Time to first token, direct and through Warmgate", fontsize=9)
    lines_ax.tick_params(labelsize=7)
    lines_ax.grid(color="#dddddd", linewidth=0.5)
    lines_ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                    frameon=False)  # fmt: skip
    series = ["p50", "mean"]
    colors = {"p50": "#2171b5", "mean": "#9ecae1"}
    labels = {f"{length:,}": length for length in sorted({r["length"] for r in doc["rows"]})}
    cut = False
    for ax, c in zip(bar_axes, concurrencies, strict=True):
        by_length = {r["length"]: r for r in doc["rows"] if r["concurrency"] == c}
        bars = {}
        for label, length in labels.items():
            row = by_length.get(length)
            for key, name in (("p50", "added_ttft_p50_ms"), ("mean", "added_ttft_mean_ms")):
                bars[label, key] = _added_bar(row, name) if row else charts.Bar(None)
        queueing = " (requests queue: read the mean)" if c > 1 else ""
        panel = charts.Panel(f"TTFT Warmgate adds, c={c}{queueing}", "ms over direct", bars)
        cut = charts.draw_panel(ax, panel, list(labels), series, colors) or cut
        ax.set_ylabel("prompt tokens", fontsize=8)
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[k]) for k in series]
        ax.legend(handles, ["p50", "mean"], fontsize=7, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)  # fmt: skip
    per_round_recorded = any(r.get("rounds") for r in doc["rows"])
    caption = [
        "Linear axes; each concurrency has its own scale.",
        charts.rounds_caption(doc["rounds"])
        if per_round_recorded
        else "Bars: pooled over rounds (this run recorded no per-round figures).",
        charts.CUT_CAPTION if cut else "",
    ]
    charts.save_figure(
        fig, path, caption, quick=bool(doc.get("quick")), caption_y=0.005, rect=(0, 0.05, 1, 1)
    )


DRAWING = report.Drawing(rebuild, render, plot)
