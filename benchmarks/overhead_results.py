"""The overhead benchmark's results: rows per cell, figures and goals, the report and the plot.

Everything here is computed from the measured runs stored in the result document (one run per
target, mode, concurrency and round), so a report and plot can be redrawn from a result file
without measuring again (`python -m benchmarks.summary --redraw`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import charts, goals, report
from benchmarks.peers import PEERS

TARGETS = ("direct", "bare", "warmgate", "warmgate-off", "baseline", *PEERS)
LABELS = {
    "direct": "direct (no proxy)",
    "bare": "bare Litestar + aiohttp relay",
    "warmgate": "Warmgate, every feature on",
    "warmgate-off": "Warmgate, keys/limits/ledger off",
    "baseline": "Warmgate, the --baseline build",
    **{key: peer.name for key, peer in PEERS.items()},
}
# Shorter names for the plot's rows, Warmgate first.
PLOT_ROWS = {
    "warmgate": "Warmgate,\nevery feature on",
    "warmgate-off": "Warmgate,\nkeys/limits/ledger off",
    "baseline": "Warmgate,\nbaseline build",
    "bare": "bare relay",
    "sglang-router": "SGLang router",
    "skyserve": "SkyServe load balancer",
    "litellm": "LiteLLM proxy",
    "direct": "direct (no proxy)",
}
MODES = ("non-stream", "stream")

Run = Mapping[str, Any]


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _spread(values: Sequence[float | None]) -> list[float] | None:
    present = [v for v in values if v is not None]
    return [round(min(present), 4), round(max(present), 4)] if present else None


def latency_metric(mode: str) -> str:
    """Streams are judged by time to first token, plain answers by the whole answer."""
    return "ttft_ms" if mode == "stream" else "e2e_ms"


def _stat(run: Run, name: str, pct: str) -> float | None:
    value = run["summary"][name].get(pct)
    return float(value) if value is not None else None


def cpu_ms_per_request(run: Run) -> float | None:
    ok = run["summary"]["ok"]
    cpu = run.get("server_cpu_s")
    return 1000 * cpu / ok if cpu is not None and ok else None


class Cells:
    """The runs of one result, looked up by target, mode, concurrency and round."""

    def __init__(self, runs: Sequence[Run]) -> None:
        self.runs: dict[tuple[str, str, int], dict[int, Run]] = {}
        for run in runs:
            key = (run["target"], run["mode"], run["concurrency"])
            self.runs.setdefault(key, {})[run["round"]] = run

    def rounds(self, target: str, mode: str, concurrency: int) -> dict[int, Run]:
        return self.runs.get((target, mode, concurrency), {})

    def added(self, target: str, mode: str, concurrency: int, pct: str) -> dict[int, float]:
        """Per round: this target's latency percentile minus direct's in the same round
        (nothing for direct itself, the baseline)."""
        if target == "direct":
            return {}
        metric = latency_metric(mode)
        direct = self.rounds("direct", mode, concurrency)
        found: dict[int, float] = {}
        for round_, run in self.rounds(target, mode, concurrency).items():
            base = direct.get(round_)
            mine = _stat(run, metric, pct)
            theirs = _stat(base, metric, pct) if base is not None else None
            if mine is not None and theirs is not None:
                found[round_] = mine - theirs
        return found

    def per_round(
        self, target: str, mode: str, concurrency: int, value: Callable[[Run], float | None]
    ) -> dict[int, float]:
        found = {}
        for round_, run in self.rounds(target, mode, concurrency).items():
            v = value(run)
            if v is not None:
                found[round_] = v
        return found

    def ratio(
        self,
        mine: str,
        theirs: str,
        mode: str,
        concurrency: int,
        value: Callable[[Run], float | None],
    ) -> list[float]:
        """Per round: `value` of `mine` over `value` of `theirs`, measured in the same round."""
        a = self.per_round(mine, mode, concurrency, value)
        b = self.per_round(theirs, mode, concurrency, value)
        return [a[r] / b[r] for r in sorted(a) if b.get(r)]


def _rps(run: Run) -> float | None:
    return float(run["summary"]["req_per_s"])


def aggregate(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, mode, concurrency): medians over rounds and their spread."""
    cells = Cells(doc["runs"])
    keys = [k for k in TARGETS if any(run["target"] == k for run in doc["runs"])]
    rows: list[dict[str, Any]] = []
    for mode in doc["modes"]:
        metric = latency_metric(mode)
        for concurrency in doc["concurrencies"]:
            bare_rps = _median(list(cells.per_round("bare", mode, concurrency, _rps).values()))
            for key in keys:
                runs = list(cells.rounds(key, mode, concurrency).values())
                if not runs:
                    continue
                added_p50 = list(cells.added(key, mode, concurrency, "p50").values())
                added_p99 = list(cells.added(key, mode, concurrency, "p99").values())
                rps_each = [_rps(r) for r in runs]
                cpu_each = [cpu_ms_per_request(r) for r in runs]
                ok = sum(r["summary"]["ok"] for r in runs)
                cpu = [r["server_cpu_s"] for r in runs if r.get("server_cpu_s") is not None]
                cpu_ms = 1000 * sum(cpu) / ok if cpu and ok else None
                rps = _median(rps_each)
                rows.append(
                    {
                        "target": key,
                        "mode": mode,
                        "concurrency": concurrency,
                        "rounds": len(runs),
                        "req_per_s": rps,
                        "p50_ms": _median([_stat(r, metric, "p50") for r in runs]),
                        "p99_ms": _median([_stat(r, metric, "p99") for r in runs]),
                        "e2e_p50_ms": _median([_stat(r, "e2e_ms", "p50") for r in runs]),
                        "added_p50_ms": _median(added_p50),
                        "added_p99_ms": _median(added_p99),
                        "server_cpu_ms_per_req": cpu_ms,
                        "req_per_cpu_s": 1000 / cpu_ms if cpu_ms else None,
                        "vs_bare": rps / bare_rps if rps and bare_rps else None,
                        "rss_mb": max((r["rss_mb"] for r in runs if r.get("rss_mb")), default=None),
                        "errors": sum(sum(r["summary"]["errors"].values()) for r in runs),
                        "requests": sum(r["summary"]["requests"] for r in runs),
                        "spread": {
                            "req_per_s": _spread(rps_each),
                            "added_p50_ms": _spread(added_p50),
                            "added_p99_ms": _spread(added_p99),
                            "server_cpu_ms_per_req": _spread(cpu_each),
                        },
                    }
                )
    return rows


def figures(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The figures the overhead run is judged by, each measured once per round."""
    cells = Cells(doc["runs"])
    top = max(doc["concurrencies"], default=0)
    found: list[dict[str, Any] | None] = []
    for mode in doc["modes"]:
        if 1 in doc["concurrencies"]:
            added = cells.added("warmgate", mode, 1, "p50").values()
            found.append(goals.figure(f"Warmgate added p50 (ms), c=1, {mode}", list(added),
                                      at_most=1.0))  # fmt: skip
        found.append(goals.figure(
            f"Warmgate req/s ÷ bare relay's, c={top}, {mode}",
            cells.ratio("warmgate", "bare", mode, top, _rps), at_least=0.8,
        ))  # fmt: skip
        found.append(goals.figure(
            f"Warmgate server CPU per request ÷ bare relay's, c={top}, {mode}",
            cells.ratio("warmgate", "bare", mode, top, cpu_ms_per_request),
        ))  # fmt: skip
        for concurrency in doc["concurrencies"]:
            found.append(goals.figure(
                f"Warmgate server CPU per request ÷ the baseline build's, c={concurrency}, {mode}",
                cells.ratio("warmgate", "baseline", mode, concurrency, cpu_ms_per_request),
                at_most=1.05,
            ))  # fmt: skip
        found.append(goals.figure(
            f"req/s with keys, limits and ledger on ÷ off, c={top}, {mode}",
            cells.ratio("warmgate", "warmgate-off", mode, top, _rps), at_least=0.9,
        ))  # fmt: skip
        found.append(goals.figure(
            f"Warmgate req/s ÷ LiteLLM's, c={top}, {mode}",
            cells.ratio("warmgate", "litellm", mode, top, _rps), at_least=20.0,
        ))  # fmt: skip
        if mode == "non-stream":
            found.append(goals.figure(
                f"Warmgate requests per CPU-second ÷ SGLang router's, c={top}, {mode}",
                cells.ratio("sglang-router", "warmgate", mode, top, cpu_ms_per_request),
                at_least=0.35,
            ))  # fmt: skip
        if mode == "stream":
            for concurrency in doc["concurrencies"]:
                router = _median(list(cells.added("sglang-router", mode, concurrency, "p50")
                                      .values()))  # fmt: skip
                if router is None:
                    continue
                found.append(goals.figure(
                    f"Warmgate added p50 (ms) beside SGLang router's, c={concurrency}, stream",
                    list(cells.added("warmgate", mode, concurrency, "p50").values()),
                    at_most=router, goal=f"≤ SGLang router's {router:.2f}",
                ))  # fmt: skip
    memory = doc.get("memory")
    held = memory["targets"].get("warmgate") if memory else None
    if memory and held:
        found.append(goals.figure(
            f"Warmgate resident MB with {memory['inflight']} requests in flight",
            [held["peak_rss_mb"]], at_most=150.0,
        ))  # fmt: skip
    return goals.present(found)


def rebuild(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document with its rows and figures computed afresh from its runs."""
    rebuilt = dict(doc)
    rebuilt.setdefault("quick", "--quick" in doc["command"].split())
    rebuilt["rows"] = aggregate(doc)
    rebuilt["goals"] = figures(doc)
    return rebuilt


def render(doc: Mapping[str, Any]) -> str:
    machine = doc["machine"]
    lines = goals.quick_banner(doc, "`python -m benchmarks.overhead`, 3 rounds of 4 s")
    lines += [f"Command: `{doc['command']}`", ""]
    lines.append(
        f"Upstream: {doc['upstream']}; servers pinned to CPU {doc['server_cpus']}, "
        f"load generator and upstream to CPU {doc['load_cpus']}; {doc['rounds']} "
        f"interleaved round(s) of {doc['duration_s']} s per cell; machine: "
        f"{machine['cpus']} x {machine['cpu_model']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_at_start'])}."
    )
    lines += ["", goals.heading(doc["rounds"]), ""]
    lines += [goals.table(doc["goals"], bool(doc.get("quick"))), ""]
    lines += [f"![Overhead per target: requests/s, added latency, CPU per request]"
              f"({doc.get('name', 'overhead')}.png)", ""]  # fmt: skip
    lines += [f"- {note}" for note in doc["notes"]]
    lines += ["", "<details><summary>Every target and concurrency: requests/s, latency, CPU, "
              "memory</summary>", ""]  # fmt: skip
    for mode in doc["modes"]:
        metric = "TTFT" if mode == "stream" else "latency"
        headers = ["target", "c", "req/s", f"{metric} p50 ms", f"{metric} p99 ms",
                   "added p50 ms", "added p99 ms", "server CPU ms/req", "req per CPU-s",
                   "x bare", "RSS MB", "errors"]  # fmt: skip
        table = [
            [LABELS[r["target"]], r["concurrency"], r["req_per_s"], r["p50_ms"], r["p99_ms"],
             r["added_p50_ms"], r["added_p99_ms"], r["server_cpu_ms_per_req"],
             r["req_per_cpu_s"], r["vs_bare"], r["rss_mb"], r["errors"]]
            for r in doc["rows"]
            if r["mode"] == mode
        ]  # fmt: skip
        lines += [f"**{mode}** (medians over rounds)", "", report.markdown_table(headers, table),
                  ""]  # fmt: skip
    memory = doc.get("memory")
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
    lines.append("</details>")
    return "\n".join(lines).rstrip() + "\n"


PANELS = (
    ("req_per_s", "requests/s (higher is better)", "requests per second"),
    ("added_p50_ms", "added latency p50 (lower is better)", "ms over direct"),
    ("added_p99_ms", "added latency p99 (lower is better)", "ms over direct"),
    ("server_cpu_ms_per_req", "server CPU per request (lower is better)", "CPU ms per request"),
)


def _bar(row: Mapping[str, Any] | None, field: str) -> charts.Bar:
    if row is None:
        return charts.Bar(None, note="not measured")
    if row["target"] == "direct" and field != "req_per_s":
        return charts.Bar(None, note="the baseline" if "added" in field else "no server")
    spread = (row.get("spread") or {}).get(field)
    low, high = spread if spread else (None, None)
    note = "no p99 in this run" if field == "added_p99_ms" else "not recorded"
    return charts.Bar(row.get(field), low, high, note=note)


def plot(doc: Mapping[str, Any], path: Path) -> None:
    plt = report.pyplot()
    modes = doc["modes"]
    rows = [k for k in PLOT_ROWS if any(r["target"] == k for r in doc["rows"])]
    series = [f"c={c}" for c in doc["concurrencies"]]
    colors = charts.series_colors(series)
    by_cell = {(r["target"], r["mode"], f"c={r['concurrency']}"): r for r in doc["rows"]}
    height = 0.75 + 0.26 * len(rows) * max(len(series), 2)
    fig, axes = plt.subplots(
        len(modes), len(PANELS), figsize=(16, height * len(modes) + 1.1), squeeze=False,
        sharey="row",
    )  # fmt: skip
    cut = False
    for axes_row, mode in zip(axes, modes, strict=True):
        for i, (ax, (field, title, unit)) in enumerate(zip(axes_row, PANELS, strict=True)):
            bars = {(t, s): _bar(by_cell.get((t, mode, s)), field) for t in rows for s in series}
            panel = charts.Panel(f"{mode}: {title}", unit, bars)
            cut = charts.draw_panel(ax, panel, rows, series, colors, row_labels=PLOT_ROWS) or cut
            if i:
                ax.tick_params(axis="y", labelleft=False)
    caption = [
        charts.rounds_caption(doc["rounds"]),
        "Rounds interleave the targets. Linear axes. One CPU core per server.",
        charts.CUT_CAPTION if cut else "",
    ]
    # A figure legend takes no part in tight_layout, so it can be placed first.
    charts.series_legend(fig, series, colors, top=0.955)
    charts.save_figure(
        fig, path, caption, quick=bool(doc.get("quick")), caption_y=0.005, rect=(0, 0.03, 1, 0.95)
    )


DRAWING = report.Drawing(rebuild, render, plot)
