"""Horizontal bar panels for the benchmark plots: linear axes, one group of bars per target.

A bar's length is its value on a linear axis that starts at zero. A whisker spans the minimum
to the maximum over rounds. When some targets are far off the others (LiteLLM's added latency
beside Warmgate's), the axis fits the other targets and each of the far bars is cut
at the axis edge, hatched, with its value written at the cut: the bars that fit keep a
readable length and the cut ones still say what they measured. A figure that was not measured
shows a note where its bar would be. Every bar carries its value; legends go outside the axes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.report import number_text, pyplot

# A row whose longest bar exceeds this many times the median row's is far off (see axis_limits).
CUT_FACTOR = 5.0
# Room right of the longest bar for its value label, as a fraction of the axis.
LABEL_ROOM = 0.28


@dataclass(frozen=True)
class Bar:
    value: float | None  # None: not measured; `note` says why
    low: float | None = None  # minimum over rounds
    high: float | None = None  # maximum over rounds
    note: str = "not recorded"


@dataclass(frozen=True)
class Panel:
    title: str
    axis_label: str
    bars: Mapping[tuple[str, str], Bar]  # (row, series) -> bar


def _ends(bar: Bar) -> list[float]:
    return [v for v in (bar.value, bar.low, bar.high) if v is not None]


def axis_limits(panel: Panel) -> tuple[float, float, float]:
    """(left, right, cut): the axis range, and the size beyond which a bar is cut.

    A row is far off when its largest bar (either side of zero) exceeds CUT_FACTOR times the
    median of the rows' largest bars; the axis then fits the other rows, and the far rows'
    larger bars are cut, on either side.
    """
    row_size: dict[str, float] = {}
    for (row, _), bar in panel.bars.items():
        row_size[row] = max([row_size.get(row, 0.0), *(abs(v) for v in _ends(bar))])
    sizes = sorted(v for v in row_size.values() if v > 0)
    cut = math.inf
    if sizes:
        threshold = CUT_FACTOR * statistics.median(sizes)
        if sizes[-1] > threshold:
            cut = max(v for v in sizes if v <= threshold) * 1.1
    shown = [max(-cut, min(cut, v)) for bar in panel.bars.values() for v in _ends(bar)]
    left, right = min([0.0, *shown]), max([0.0, *shown])
    span = max(right - left, 1e-9)
    negative_value = any(b.value is not None and b.value < 0 for b in panel.bars.values())
    left_room = span * LABEL_ROOM if negative_value else span * 0.03 if left < 0 else 0.0
    right_room = span * LABEL_ROOM if right > 0 or not negative_value else span * 0.03
    return left - left_room, right + right_room, cut


def draw_panel(
    ax: Any,
    panel: Panel,
    rows: Sequence[str],
    series: Sequence[str],
    colors: Mapping[str, str],
    *,
    row_labels: Mapping[str, str] | None = None,
) -> bool:
    """Draws `panel` on `ax`: row i's bars around y = i (first row on top). True when a bar
    was cut at the axis edge (the caller's caption then says how to read it)."""
    was_cut = False
    left, right, cut = axis_limits(panel)
    height = 0.8 / max(len(series), 1)
    span = right - left
    pad = span * 0.012
    one_note = _rows_with_one_note(panel, rows, series)
    for i, row in enumerate(rows):
        if row in one_note:
            _note(ax, pad, i, one_note[row])
        for j, key in enumerate(series):
            bar = panel.bars.get((row, key))
            if bar is None:
                continue
            y = i - 0.4 + height * (j + 0.5)
            if bar.value is None:
                if row not in one_note:
                    _note(ax, pad, y, bar.note)
                continue
            cut_here = _draw_bar(
                ax, y, bar.value, bar, colors[key], height=height, cut=cut, pad=pad
            )
            was_cut = was_cut or cut_here
    ax.set_xlim(left, right)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([(row_labels or {}).get(r, r) for r in rows], fontsize=8)
    if left < 0:
        ax.axvline(0, color="grey", linewidth=0.6)
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel(panel.axis_label, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)
    return was_cut


CUT_CAPTION = "A hatched bar is cut at the axis edge; the number after it is its value."


def mark_quick(fig: Any) -> None:
    """A quick run's plot says so in its top-left corner, where a reader looks first."""
    fig.text(0.005, 0.995, "Quick run: indicative only", ha="left", va="top", fontsize=9,
             color="#a50f15", weight="bold")  # fmt: skip


def save_figure(
    fig: Any,
    path: Any,
    caption: Sequence[str],
    *,
    quick: bool,
    caption_y: float,
    rect: tuple[float, float, float, float],
) -> None:
    """Captions the figure at its foot (the parts that are not empty, at height `caption_y`),
    marks a quick run, lays the axes out inside `rect`, writes the PNG and frees the figure."""
    if quick:
        mark_quick(fig)
    fig.text(0.5, caption_y, " ".join(c for c in caption if c), ha="center", va="bottom",
             fontsize=8)  # fmt: skip
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def rounds_caption(rounds: int) -> str:
    if rounds > 1:
        return f"Each bar: the median over {rounds} rounds; whiskers: min to max."
    return "One round: no spread to show."


def _label(ax: Any, x: float, y: float, text: str, *, left_of: bool) -> None:
    ax.text(x, y, text, ha="right" if left_of else "left", va="center", fontsize=6.5)


def _draw_bar(
    ax: Any, y: float, value: float, bar: Bar, color: str, *, height: float, cut: float, pad: float
) -> bool:
    """One measured bar (`value` is `bar.value`) with its whisker and label; True when it was
    cut at `cut`."""
    if abs(value) > cut:
        edge = math.copysign(cut, value)
        ax.barh(y, edge, height, color=color, hatch="///", edgecolor="white")
        if value > 0:
            _label(ax, edge + pad, y, f"▶ {number_text(value)}", left_of=False)
        else:
            _label(ax, edge - pad, y, f"{number_text(value)} ◀", left_of=True)
        return True
    ax.barh(y, value, height, color=color)
    low = bar.low if bar.low is not None else value
    high = bar.high if bar.high is not None else value
    if high > low:
        ax.errorbar(value, y, xerr=[[value - low], [high - value]], fmt="none",
                    ecolor="black", elinewidth=0.7, capsize=1.5)  # fmt: skip
    if value >= 0:
        _label(ax, max(value, high) + pad, y, number_text(value), left_of=False)
    else:
        _label(ax, min(value, low) - pad, y, number_text(value), left_of=True)
    return False


def _rows_with_one_note(panel: Panel, rows: Sequence[str], series: Sequence[str]) -> dict[str, str]:
    """Rows whose every bar is the same note: written once, mid-row, instead of per bar."""
    found = {}
    for row in rows:
        bars = [panel.bars.get((row, key)) for key in series]
        notes = {b.note for b in bars if b is not None and b.value is None}
        if len(notes) == 1 and all(b is not None and b.value is None for b in bars):
            found[row] = notes.pop()
    return found


def _note(ax: Any, x: float, y: float, text: str) -> None:
    ax.text(x, y, text, va="center", fontsize=6.5, color="grey", style="italic")


def series_colors(series: Sequence[str]) -> dict[str, str]:
    """Shades of one blue, light to dark, in the order of `series` (low to high concurrency)."""
    shades = ["#9ecae1", "#4292c6", "#08519c", "#08306b"]
    if len(series) <= 1:
        return {key: "#4292c6" for key in series}
    step = (len(shades) - 1) / (len(series) - 1)
    return {key: shades[round(i * step)] for i, key in enumerate(series)}


def series_legend(
    fig: Any, series: Sequence[str], colors: Mapping[str, str], *, top: float
) -> None:
    """One legend row above the panels (at figure height `top`), outside every axis."""
    from matplotlib.patches import Patch  # noqa: PLC0415 - only the plotting step needs it

    handles = [Patch(color=colors[key], label=key) for key in series]
    fig.legend(handles=handles, loc="lower center", ncol=len(series), fontsize=8,
               bbox_to_anchor=(0.5, top), frameon=False)  # fmt: skip
