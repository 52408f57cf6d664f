"""benchmarks/README.md's figures, rebuilt from the reports in benchmarks/results/.

    python -m benchmarks.summary                 # print the README as it would be rebuilt
    python -m benchmarks.summary --write-readme  # rewrite its results blocks in place
    python -m benchmarks.summary --check         # exit 1 when a block differs from its report
    python -m benchmarks.summary --redraw        # redraw each .md and .png from its .json

The README is written by hand except between marker pairs such as

    <!-- results: overhead (python -m benchmarks.summary --write-readme) -->
    <!-- end results: overhead -->

where the summary puts the report `results/overhead.md` (figures and goals, the plot, the
tables; each names the command that produced it). `--redraw` rebuilds reports and plots from
the result documents (`results/<name>.json`, kept locally, not committed) without measuring
again, for when the way they are drawn changes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import (
    edges,
    long_context_results,
    overhead_results,
    report,
    routing_results,
    wire_decode,
)

README = Path(__file__).resolve().parent / "README.md"
BLOCK = re.compile(
    r"(?P<begin><!-- results: (?P<name>[\w.-]+) \(python -m benchmarks\.summary "
    r"--write-readme\) -->\n)(?P<body>.*?)(?P<end><!-- end results: (?P=name) -->)",
    re.DOTALL,
)


DRAWINGS = {
    "overhead": overhead_results.DRAWING,
    "long_context": long_context_results.DRAWING,
    "routing": routing_results.DRAWING,
    "edges": report.Drawing(edges.rebuild, edges.render, edges.plot),
    "wire_decode": report.Drawing(dict, wire_decode.render, None),
}


def block_body(results: Path, name: str, readme: Path) -> str:
    """What goes between a block's markers: the report, its plot linked from the README."""
    path = results / f"{name}.md"
    if not path.exists():
        return f"No results yet: `{name}.md` is missing from the results folder.\n"
    folder = report.relative_link(results, readme.parent)
    text = path.read_text()
    return text.replace(f"]({name}.png)", f"]({folder}/{name}.png)")


def rebuilt(readme_text: str, results: Path, readme: Path) -> str:
    def fill(match: re.Match[str]) -> str:
        body = block_body(results, match["name"], readme)
        return match["begin"] + "\n" + body.rstrip() + "\n\n" + match["end"]

    return BLOCK.sub(fill, readme_text)


def redraw(results: Path) -> list[Path]:
    """Rewrites `<name>.md` and `<name>.png` from each `<name>.json` a benchmark wrote (the
    JSON itself is left as measured)."""
    written: list[Path] = []
    for path in sorted(results.glob("*.json")):
        doc = json.loads(path.read_text())
        kind = doc.get("benchmark") if isinstance(doc, dict) else None
        drawing = DRAWINGS.get(kind) if isinstance(kind, str) else None
        if drawing is None:
            continue  # not a result document of the benchmarks drawn here
        doc.setdefault("name", path.stem)
        doc = drawing.rebuild(doc)
        report_path = path.with_suffix(".md")
        report_path.write_text(drawing.render(doc))
        written.append(report_path)
        if drawing.plot is not None:
            drawing.plot(doc, path.with_suffix(".png"))
            written.append(path.with_suffix(".png"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.summary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--readme", type=Path, default=README)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write-readme", action="store_true", help="rewrite the README")
    action.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    parser.add_argument("--redraw", action="store_true", help="redraw reports from their JSON")
    args = parser.parse_args(argv)
    written: list[Path] = []
    if args.redraw:
        written += redraw(args.results)
    text = args.readme.read_text()
    fresh = rebuilt(text, args.results, args.readme)
    if args.check:
        if fresh != text:
            print(
                f"{report.shown_path(args.readme)} differs from the reports in "
                f"{report.shown_path(args.results)}: run python -m benchmarks.summary "
                "--write-readme",
                file=sys.stderr,
            )
            return 1
    elif args.write_readme:
        if fresh != text:
            args.readme.write_text(fresh)
        written.append(args.readme)
    elif not args.redraw:
        print(fresh, end="")
    if written:
        report.print_written(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
