"""Writing results: the JSON document, its markdown report and its PNG plot, and their paths.

Every benchmark writes `<name>.json` (every measurement, kept locally), `<name>.md` (the
report: figures and goals, then the tables) and `<name>.png` (the plot) to one folder, and
prints the three paths last. benchmarks/README.md shows the `.md` and `.png` of full runs.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The exact command that produced a result, as a user would type it."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", f"benchmarks.{module}", *args])


def machine() -> dict[str, Any]:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(data), indent=1) + b"\n")


def number_text(value: float) -> str:
    """Three significant figures or so: `1,234`, `12.3`, `0.79`."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return "-" if math.isnan(value) else number_text(value)
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, as a user would type it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def relative_link(target: Path, start: Path) -> str:
    """A markdown link from a file in `start` to `target`, with forward slashes."""
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def write_results(
    out: Path,
    name: str,
    doc: Mapping[str, Any],
    render: Callable[[Mapping[str, Any]], str],
    draw: Callable[[Mapping[str, Any], Path], None] | None = None,
) -> list[Path]:
    """Writes `<name>.json`, `.md` and (given `draw`) `.png` under `out`; returns their paths."""
    paths = [out / f"{name}.json", out / f"{name}.md"]
    write_json(paths[0], doc)
    paths[1].write_text(render(doc))
    if draw is not None:
        paths.append(out / f"{name}.png")
        draw(doc, paths[2])
    return paths


class Drawing:
    """How one benchmark's result document becomes its report and (if it has one) plot."""

    def __init__(
        self,
        rebuild: Callable[[Mapping[str, Any]], dict[str, Any]],
        render: Callable[[Mapping[str, Any]], str],
        plot: Callable[[Mapping[str, Any], Path], None] | None,
    ) -> None:
        self.rebuild = rebuild
        self.render = render
        self.plot = plot


def publish(out: Path, name: str, doc: Mapping[str, Any], drawing: Drawing) -> list[Path]:
    """Rebuilds `doc` by `drawing`, writes it under `out` (`write_results`) and prints its
    report; returns the paths written."""
    rebuilt = drawing.rebuild(doc)
    written = write_results(out, name, rebuilt, drawing.render, drawing.plot)
    print(drawing.render(rebuilt))
    return written


def print_written(paths: Sequence[Path]) -> None:
    print("Wrote:")
    for path in paths:
        print(f"  {shown_path(path)}")


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib  # noqa: PLC0415 - only the plotting step needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt
