"""Bar panels on linear axes: far-off bars are cut at the edge, the others keep their length."""

from __future__ import annotations

from pathlib import Path

from benchmarks import charts, report


def panel(values: dict[str, float | None]) -> charts.Panel:
    return charts.Panel("t", "ms", {(row, "c=1"): charts.Bar(v) for row, v in values.items()})


def test_the_axis_fits_every_bar_when_none_is_far_off() -> None:
    left, right, cut = charts.axis_limits(panel({"a": 1.0, "b": 2.0, "c": 4.0}))
    assert left == 0.0
    assert cut > 4.0
    assert right > 4.0


def test_a_row_far_off_the_median_is_cut_and_the_axis_fits_the_others() -> None:
    left, right, cut = charts.axis_limits(panel({"a": 1.0, "b": 2.0, "c": 3.0, "slow": 800.0}))
    assert left == 0.0
    assert 3.0 < cut < 800.0
    assert right < 10.0


def test_negative_bars_widen_the_axis_to_the_left_and_are_cut_the_same_way() -> None:
    left, _, cut = charts.axis_limits(panel({"a": -1.0, "b": 2.0, "c": 1.5, "d": -900.0}))
    assert -10.0 < left < -1.0
    assert cut < 900.0


def test_a_panel_with_an_unmeasured_bar_draws_its_note_and_reports_the_cut(tmp_path: Path) -> None:
    plt = report.pyplot()
    fig, ax = plt.subplots()
    bars = {("a", "c=1"): charts.Bar(1.0, 0.8, 1.2), ("b", "c=1"): charts.Bar(2.0),
            ("c", "c=1"): charts.Bar(1.5), ("far", "c=1"): charts.Bar(500.0),
            ("none", "c=1"): charts.Bar(None, note="the baseline")}  # fmt: skip
    rows = ["a", "b", "c", "far", "none"]
    cut = charts.draw_panel(ax, charts.Panel("t", "ms", bars), rows, ["c=1"], {"c=1": "blue"})
    texts = [t.get_text() for t in ax.texts]
    assert cut is True
    assert "▶ 500" in texts
    assert "the baseline" in texts
    assert "1.00" in texts
    fig.savefig(tmp_path / "panel.png")
    plt.close(fig)
