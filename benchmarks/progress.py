"""A one-line progress bar on stderr for long runs (no dependency; silent when stderr is no TTY)."""

from __future__ import annotations

import sys
import time
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
