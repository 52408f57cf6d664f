"""The cell counter every benchmark prints: k of N, time so far, and an ETA from the pace."""

from __future__ import annotations

import io

from benchmarks.progress import CellCounter, clock_text


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_clock_text_reads_minutes_and_seconds_then_hours() -> None:
    assert clock_text(0) == "0:00"
    assert clock_text(65) == "1:05"
    assert clock_text(3723) == "1:02:03"


def test_each_cell_prints_its_number_and_an_eta_from_the_cells_done_so_far() -> None:
    clock, out = FakeClock(), io.StringIO()
    counter = CellCounter("bench", [1.0, 1.0, 1.0, 1.0], stream=out, clock=clock)
    counter.start("first")
    clock.now_s += 10
    counter.finish()
    counter.start("second")
    clock.now_s += 10
    counter.finish()
    counter.start("third")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[bench] cell 1/4  first  elapsed 0:00  ETA -"
    assert lines[1] == "[bench] cell 2/4  second  elapsed 0:10  ETA 0:30"
    assert lines[2] == "[bench] cell 3/4  third  elapsed 0:20  ETA 0:20"


def test_the_eta_scales_by_the_weight_still_to_run() -> None:
    clock = FakeClock()
    counter = CellCounter("bench", [1.0, 4.0, 4.0], stream=io.StringIO(), clock=clock)
    counter.start("light")
    clock.now_s += 3
    counter.finish()
    # 3 s for weight 1: the two cells of weight 4 should take 24 s more.
    assert counter.eta_s() == 24.0


def test_close_says_how_many_cells_ran_and_how_long_they_took() -> None:
    clock, out = FakeClock(), io.StringIO()
    counter = CellCounter("bench", [1.0, 1.0], stream=out, clock=clock)
    for label in ("a", "b"):
        counter.start(label)
        clock.now_s += 30
        counter.finish()
    counter.close()
    assert out.getvalue().splitlines()[-1] == "[bench] 2/2 cells in 1:00"
