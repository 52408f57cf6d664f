"""Figures judged by the median over rounds, shown with their spread; quick verdicts marked."""

from __future__ import annotations

from benchmarks import goals


def test_a_figure_is_judged_by_its_median_over_rounds_and_keeps_its_spread() -> None:
    found = goals.figure("added p50 (ms)", [0.9, 1.4, 0.8], at_most=1.0)
    assert found == {
        "goal": "added p50 (ms)",
        "measured": 0.9,
        "min": 0.8,
        "max": 1.4,
        "rounds": 3,
        "target": "≤ 1",
        "met": True,
    }


def test_a_figure_below_its_floor_is_not_met_and_rounds_without_a_value_are_left_out() -> None:
    found = goals.figure("req/s ratio", [0.7, None, 0.85], at_least=0.8, goal="≥ 0.8 of bare")
    assert found is not None
    assert (found["measured"], found["rounds"], found["target"], found["met"]) == (
        0.775, 2, "≥ 0.8 of bare", False,
    )  # fmt: skip


def test_a_figure_without_a_goal_has_no_verdict_and_one_never_measured_is_dropped() -> None:
    assert goals.figure("CPU ratio", [1.0])["met"] is None  # type: ignore[index]
    assert goals.figure("CPU ratio", [None]) is None
    assert goals.present([None, {"goal": "x"}]) == [{"goal": "x"}]


def test_the_table_marks_a_quick_runs_verdicts_indicative_and_shows_the_spread() -> None:
    found = [goals.figure("added p50 (ms)", [0.9, 1.4, 0.8], at_most=1.0)]
    quick = goals.table([f for f in found if f], quick=True)
    full = goals.table([f for f in found if f], quick=False)
    assert "| added p50 (ms) | 0.90 | 0.80 to 1.40 (3 rounds) | ≤ 1 | yes (indicative) |" in quick
    assert "| added p50 (ms) | 0.90 | 0.80 to 1.40 (3 rounds) | ≤ 1 | yes |" in full


def test_only_a_quick_run_opens_with_the_indicative_banner() -> None:
    assert goals.quick_banner({"quick": True}, "`cmd`")[0].startswith("**Quick run")
    assert goals.quick_banner({"quick": False}, "`cmd`") == []
