"""The figures a benchmark is judged by: median over rounds, the spread, the goal, the verdict.

A figure is measured once per round (each round visits every target, so a per-round figure
compares targets under the same conditions); the verdict reads the median of those values,
and the table shows their minimum and maximum next to it. A quick run's verdicts are marked
indicative: its cells are short and few.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks import report


def figure(
    name: str,
    per_round: Sequence[float | None],
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    goal: str | None = None,
) -> dict[str, Any] | None:
    """One figure as stored in a result document; None when no round measured it.

    `at_most`/`at_least` set the goal the median must reach (`goal` overrides how it reads);
    without either the figure is reported with no verdict.
    """
    values = [float(v) for v in per_round if v is not None]
    if not values:
        return None
    median = statistics.median(values)
    met: bool | None = None
    if at_most is not None:
        met = median <= at_most
        goal = goal or f"≤ {at_most:g}"
    elif at_least is not None:
        met = median >= at_least
        goal = goal or f"≥ {at_least:g}"
    return {
        "goal": name,
        "measured": round(median, 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "rounds": len(values),
        "target": goal or "",
        "met": met,
    }


def present(found: Sequence[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [f for f in found if f is not None]


def verdict_text(met: bool | None, quick: bool) -> str:
    if met is None:
        return "-"
    text = "yes" if met else "**no**"
    return f"{text} (indicative)" if quick else text


def spread_text(found: Mapping[str, Any]) -> str:
    """`0.71 to 0.90 (3 rounds)`; older result documents stored the median alone."""
    rounds = found.get("rounds")
    if rounds is None:
        return "not recorded"
    if rounds == 1:
        return "one measurement"
    low = report.number_text(found["min"])
    high = report.number_text(found["max"])
    return f"{low} to {high} ({rounds} rounds)"


def heading(rounds: int | None) -> str:
    """The line above a figures table: how its medians were taken."""
    if rounds is None:
        how = "pooled over rounds: this run recorded no per-round figures"
    elif rounds == 1:
        how = "one round: no spread"
    else:
        how = f"the median of the figure measured in each of {rounds} rounds"
    return f"**Figures and goals** ({how})"


def table(found: Sequence[Mapping[str, Any]], quick: bool) -> str:
    rows = [
        [
            f["goal"],
            f["measured"],
            spread_text(f),
            f.get("target") or "-",
            verdict_text(f.get("met"), quick),
        ]
        for f in found
    ]
    headers = ["figure", "measured", "spread (min to max)", "goal", "met"]
    return report.markdown_table(headers, rows)


def quick_banner(doc: Mapping[str, Any], full_run: str) -> list[str]:
    """The lines that open a quick run's report; none for a full run."""
    if not doc.get("quick"):
        return []
    return [
        f"**Quick run: the verdicts are indicative.** Short cells on a shared machine move "
        f"from run to run by more than some of the goals' margins; the spread column shows by "
        f"how much. A full run ({full_run}) is the one to quote.",
        "",
    ]
