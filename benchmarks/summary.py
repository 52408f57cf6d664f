"""The README's benchmark figures, built from benchmarks/results/*.json.

    python -m benchmarks.summary                 # print the markdown
    python -m benchmarks.summary --write-readme  # replace the marked block in README.md

Every figure names the command that produced it (stored in its result file).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.gateway import REPO_ROOT

BEGIN = "<!-- benchmarks:begin (python -m benchmarks.summary --write-readme) -->"
END = "<!-- benchmarks:end -->"
SECTIONS = (
    ("overhead", "Gateway overhead (canned upstream)"),
    ("overhead-features", "Keys, limits and ledger on vs off (canned upstream, 5 rounds)"),
    ("overhead-sim", "Gateway overhead (simulator at --time-scale 0)"),
    ("long_context", "Long prompts through the simulator's latency model"),
    ("long_context-canned", "Long prompts, the gateway's own cost (canned upstream)"),
    ("routing", "Routing quality on the shared-prefix workload"),
)


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def overhead_rows(doc: dict[str, Any], source: str) -> list[list[object]]:
    def row(target: str, mode: str, concurrency: int) -> dict[str, Any] | None:
        for r in doc["rows"]:
            if (r["target"], r["mode"], r["concurrency"]) == (target, mode, concurrency):
                return dict(r)
        return None

    out: list[list[object]] = []
    top = max(doc["concurrencies"])
    command = f"`{doc['command']}`"
    for mode in doc["modes"]:
        wg1, wg, bare = row("warmgate", mode, 1), row("warmgate", mode, top), row("bare", mode, top)
        if wg1:
            out.append([f"Warmgate added p50, c=1, {mode} ({source})",
                        f"{wg1['added_p50_ms']:.2f} ms", "≤ 1 ms", command])  # fmt: skip
        if wg and bare:
            ratio = wg["req_per_s"] / bare["req_per_s"]
            out.append([f"Warmgate req/s ÷ bare relay's, c={top}, {mode} ({source})",
                        f"{wg['req_per_s']:.0f} / {bare['req_per_s']:.0f} = {ratio:.2f}",
                        "≥ 0.8", command])  # fmt: skip
            out.append([f"server CPU per request, c={top}, {mode}: Warmgate / bare ({source})",
                        f"{wg['server_cpu_ms_per_req']:.2f} / {bare['server_cpu_ms_per_req']:.2f}"
                        " ms", "-", command])  # fmt: skip
        off = row("warmgate-off", mode, top)
        if wg and off:
            cpu_on, cpu_off = wg["server_cpu_ms_per_req"], off["server_cpu_ms_per_req"]
            out.append([f"keys+limits+ledger on ÷ off, req/s, c={top}, {mode}",
                        f"{wg['req_per_s'] / off['req_per_s']:.2f} (CPU/req "
                        f"{cpu_on:.2f} vs {cpu_off:.2f} ms)", "≥ 0.9", command])  # fmt: skip
    return out


def headline(results: Path) -> list[list[object]]:
    rows: list[list[object]] = []
    sources = (("overhead", "canned"), ("overhead-features", "canned, 5 rounds"),
               ("overhead-sim", "sim"))  # fmt: skip
    for name, source in sources:
        doc = load(results, name)
        if doc:
            rows += overhead_rows(doc, source)
            for goal in doc.get("goals", []):
                if (
                    "LiteLLM" in goal["goal"]
                    or "SGLang router" in goal["goal"]
                    or "MB" in goal["goal"]
                ):
                    rows.append([goal["goal"], goal["measured"], "met" if goal["met"] else
                                 "**not met**", f"`{doc['command']}`"])  # fmt: skip
    for name in ("long_context", "long_context-canned"):
        doc = load(results, name)
        if not doc:
            continue
        for r in doc["rows"]:
            if r["concurrency"] == 1 and r["length"] >= 100_000:
                rows.append([f"TTFT Warmgate adds at {r['length']:,} prompt tokens, c=1, p50 "
                             f"({'canned' if 'canned' in name else 'sim'})",
                             f"{r['added_ttft_p50_ms']} ms", "≤ 5 ms",
                             f"`{doc['command']}`"])  # fmt: skip
    doc = load(results, "routing")
    if doc:
        for goal in doc["goals"]:
            rows.append([goal["goal"], goal["measured"], "met" if goal["met"] else "**not met**",
                         f"`{doc['command']}`"])  # fmt: skip
    return rows


def build(results: Path) -> str:
    parts = [BEGIN, "", "**Headline figures** (each from the command beside it)", ""]
    parts.append(
        report.markdown_table(["figure", "measured", "goal", "command"], headline(results))
    )
    parts.append("")
    for name, title in SECTIONS:
        table = results / f"{name}.md"
        if table.exists():
            parts += [f"#### {title}", "", table.read_text().rstrip(), "",
                      f"![{title}](benchmarks/results/{name}.png)", ""]  # fmt: skip
    parts.append(END)
    return "\n".join(parts)


def write_readme(readme: Path, block: str) -> None:
    text = readme.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0:
        raise SystemExit(f"{readme}: markers {BEGIN!r} ... {END!r} not found")
    readme.write_text(text[:start] + block + text[end + len(END) :])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.summary", description=__doc__)
    parser.add_argument("--results", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    block = build(args.results)
    if args.write_readme:
        write_readme(REPO_ROOT / "README.md", block)
    else:
        print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
