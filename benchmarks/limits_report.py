"""The report of benchmarks/limits.py: its markdown and its figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import report


def render(doc: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.2f}" for x in doc["machine"]["load_average_at_start"])
    latency, edges_run, outage = doc["latency"], doc["edges"], doc["outage"]
    setup = doc["setup"]
    rpm, edges, quota, concurrency = (
        setup["rpm"],
        setup["edges"],
        setup["quota"],
        setup["concurrency"],
    )
    spent = "spent" if outage["quota_admitted"] >= quota else "not spent"
    lines = [
        f"Command: `{doc['command']}`",
        "",
        f"Redis on loopback; each far limiter reaches it through a fault proxy adding "
        f"{doc['latency_ms']:g} ms each way ({doc['latency_ms'] * 2:g} ms per round trip). "
        f"{doc['clients_per_edge_and_key']} clients per edge and key in runs 2 and 3. Load "
        f"average at start {load}; {doc['wall_s']} s in all.",
        "",
        f"**1. Admission at c=1** ({latency['admissions']:,} admissions, one every "
        f"{latency['interval_ms']:g} ms, key with rpm, concurrency and quota)",
        "",
    ]
    labels = {
        "local": "in process",
        "redis": "Redis, loopback",
        "redis_far": f"Redis, {doc['latency_ms'] * 2:g} ms round trip",
    }
    rows = [
        [
            labels[name],
            r["admit_ms"]["p50"],
            r["admit_ms"]["p90"],
            r["admit_ms"]["p99"],
            r["admit_ms"]["max"],
            r["waited"],
            r["exchanges"],
        ]
        for name, r in latency["rows"].items()
    ]
    headers = ["limits", "p50 ms", "p90 ms", "p99 ms", "max ms", "waited for Redis", "round trips"]
    lines += [report.markdown_table(headers, rows), ""]
    lines += [
        f"**2. rpm-{rpm} key through {edges} edges** (clock x{edges_run['scale']}: a minute "
        f"lasts {edges_run['window_real_s']} s; each edge keeps at most "
        f"{edges_run['spare_cap_per_edge']} spare units)",
        "",
        report.markdown_table(
            ["minute", "per edge", "total"],
            [
                [w["window"], " / ".join(map(str, w["per_edge"])), w["total"]]
                for w in edges_run["windows"]
            ],
        ),
        "",
        f"**3. Redis cut for {outage['cut_real_s'][1] - outage['cut_real_s'][0]:g} s under load** "
        f"(clock x{outage['scale']}: a minute lasts {outage['window_real_s']:g} s; cut from "
        f"{outage['cut_real_s'][0]} s to {outage['cut_real_s'][1]} s; minutes "
        f"{' and '.join(map(str, outage['windows_inside_cut']))} lie wholly inside it; local share "
        f"{outage['share_per_edge']} per edge)",
        "",
        report.markdown_table(
            ["minute", "rpm key per edge", "total", "decided on local shares"],
            [
                [w["window"], " / ".join(map(str, w["per_edge"])), w["total"], w["degraded"]]
                for w in outage["rpm_windows"]
            ],
        ),
        "",
        f"Concurrency-{concurrency} key: at most {outage['concurrency_peak_in_cut']} in flight "
        f"during the cut (per edge {outage['concurrency_peak_in_cut_per_edge']}). Quota-{quota} "
        f"key: {outage['quota_admitted']} admitted in all, {outage['quota_degraded']} of them "
        f"during the cut (quota {spent}). Shared limits again "
        f"{outage['recovery'].get('reachable_after_s')} s after Redis came back. Log lines "
        "per edge: "
        + "; ".join(
            ", ".join(f"{name} at {t} s" for t, name in lines_) for lines_ in outage["events"]
        )
        + ".",
        "",
    ]
    lines += [
        f"Each edge counted {outage['recovery'].get('processes_seen_at_cut')} live limiter "
        "processes when the cut began, so its local share is a third of what it last saw left. "
        "In the minutes wholly inside the cut no edge had heard from Redis: each admits a third "
        "of the limit. In the minute the cut began (0), and for the quota, an edge's view of "
        "what was left is as old as its last round trip, so the edges together may pass the "
        "limit by what the others were granted after that; once Redis is back, what each edge "
        "admitted is recorded, and an edge keeps to its local cap for the rest of a minute it "
        "lived through on local shares until every edge has reported.",
        "",
    ]
    table = [[g["goal"], g["measured"], "yes" if g["met"] else "**no**"] for g in doc["goals"]]
    lines += ["**Goals**", "", report.markdown_table(["goal", "measured", "met"], table), ""]
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Path) -> None:
    plt = report.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = doc["latency"]["rows"]
    names = list(rows)
    xs = range(len(names))
    for offset, q in ((-0.25, "p50"), (0.0, "p90"), (0.25, "p99")):
        left.bar([x + offset for x in xs], [rows[n]["admit_ms"][q] for n in names], 0.25, label=q)
    left.set_xticks(list(xs))
    left.set_xticklabels(["in process", "Redis loopback", f"Redis +{doc['latency_ms'] * 2:g} ms"])
    left.set_ylabel("admit() ms")
    left.set_title("Admission at c=1")
    left.legend()
    windows = doc["outage"]["rpm_windows"]
    bottom = [0] * len(windows)
    setup = doc["setup"]
    for edge in range(setup["edges"]):
        values = [w["per_edge"][edge] for w in windows]
        right.bar([w["window"] for w in windows], values, bottom=bottom, label=f"edge {edge}")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    right.axhline(setup["rpm"], color="black", linestyle="--", linewidth=1, label="rpm limit")
    for window in doc["outage"]["windows_inside_cut"]:
        right.axvspan(window - 0.45, window + 0.45, color="red", alpha=0.08)
    right.set_xlabel("minute (shaded: Redis cut off)")
    right.set_ylabel("admissions")
    right.set_title(f"rpm-{setup['rpm']} key on {setup['edges']} edges through a Redis cut")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
