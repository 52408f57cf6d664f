"""Progress of a run on stderr: cells done out of all with an ETA, and a per-request bar.

The cell counter prints one line per cell, always; the request bar redraws one terminal line
and stays silent when stderr is no terminal. No dependency.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO


class Progress:
    """Counts finished requests and redraws at most every `interval_s` seconds.

    `total` is a request count, or None when the run is bounded by `duration_s` instead.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        duration_s: float | None = None,
        *,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        interval_s: float = 0.25,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = total
        self.duration_s = duration_s
        self.interval_s = interval_s
        self.done = 0
        self.errors = 0
        self.started = time.monotonic()
        self.drawn_at = 0.0

    def advance(self, ok: bool) -> None:
        self.done += 1
        if not ok:
            self.errors += 1
        if self.enabled:
            now = time.monotonic()
            if now - self.drawn_at >= self.interval_s:
                self.drawn_at = now
                self.draw(now)

    def draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            count = f"{self.done}/{self.total}"
        elif self.duration_s:
            fraction = min(elapsed / self.duration_s, 1.0)
            count = f"{self.done}"
        else:
            fraction, count = 0.0, f"{self.done}"
        width = 24
        filled = int(fraction * width)
        bar = "#" * filled + "-" * (width - filled)
        rate = self.done / elapsed
        self.stream.write(
            f"\r{self.label[:40]:<40} [{bar}] {count} req {rate:8.0f} req/s err {self.errors}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def clock_text(seconds: float) -> str:
    """`1:05` for 65 s, `1:02:03` past an hour."""
    whole = max(int(seconds + 0.5), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class CellCounter:
    """One line per measured cell on stderr, `cell k/N`, with the time so far and an ETA.

    Printed whether or not stderr is a terminal, so a run's log shows how far it got. Cells
    may weigh more than one another (a 128k-token prompt costs more than a 1k one): the ETA is
    the time so far scaled by the weight still to run over the weight done.
    """

    def __init__(
        self,
        benchmark: str,
        weights: Sequence[float],
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.benchmark = benchmark
        self.weights = [max(w, 0.0) for w in weights]
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.started = clock()
        self.done = 0

    @property
    def total(self) -> int:
        return len(self.weights)

    def eta_s(self) -> float | None:
        """Seconds still to run, from the pace so far; None before the first cell is done."""
        done_weight = sum(self.weights[: self.done])
        if self.done == 0 or done_weight <= 0:
            return None
        left_weight = sum(self.weights[self.done :])
        return (self.clock() - self.started) * left_weight / done_weight

    def start(self, label: str) -> None:
        """Announces the next cell; call `finish` when it is measured."""
        eta = self.eta_s()
        self.stream.write(
            f"[{self.benchmark}] cell {self.done + 1}/{self.total}  {label}  "
            f"elapsed {clock_text(self.clock() - self.started)}  "
            f"ETA {'-' if eta is None else clock_text(eta)}\n"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.done = min(self.done + 1, self.total)

    def close(self) -> None:
        self.stream.write(
            f"[{self.benchmark}] {self.done}/{self.total} cells in "
            f"{clock_text(self.clock() - self.started)}\n"
        )
        self.stream.flush()
