"""Cost of validating and rewriting request bodies (the gateway's wire module), per call.

    python -m benchmarks.wire_decode            # 2 s per figure, ~20 s
    python -m benchmarks.wire_decode --quick    # 0.2 s per figure

Bodies: a typical ~1 KB chat request (system + user + tool round trip, tools, extras) and a
~500 KB single-message chat request (about 128k tokens). For each: decode + validate into
the RequestView; the view's upstream body for a stream without stream_options (the common
case: one insertion, no scan); and the general rewrite: forced include_usage alone, and with a
model alias to replace as well. One process, one core, no server: the figures are the CPU
cost of these calls alone. Writes benchmarks/results/wire_decode.{json,md} (quick:
wire_decode-quick.*); a table reads better than a plot for eight figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.progress import CellCounter
from warmgate.proxy.wire import decode_chat_completion, rewrite_request


def typical_body() -> bytes:
    return json.dumps(
        {
            "model": "demo",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant. " * 8},
                {"role": "user", "content": "What is the weather in Paris today? " * 4},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                }
            ],
            "temperature": 0.7,
            "max_tokens": 256,
            "stream": True,
            "top_k": 20,
        }
    ).encode()


def long_body() -> bytes:
    return json.dumps(
        {
            "model": "demo",
            "messages": [{"role": "user", "content": "lorem ipsum dolor sit amet " * 19_000}],
            "stream": True,
        }
    ).encode()


def per_call_us(action: Callable[[], object], seconds: float) -> float:
    """CPU microseconds per call, over about `seconds` of wall time. This thread's CPU time,
    not wall time: another process taking the core while it runs does not count."""
    calls, started, cpu_started = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - started < seconds:
        for _ in range(50):
            action()
        calls += 50
    return (time.thread_time() - cpu_started) / calls * 1e6


def render(doc: Mapping[str, Any]) -> str:
    lines = []
    if doc.get("quick"):
        lines += [f"**Quick run: indicative.** {doc['seconds_per_figure']} s per figure.", ""]
    lines += [f"Command: `{doc['command']}`", ""]
    machine = doc["machine"]
    load = ", ".join(f"{x:.2f}" for x in machine["load_average_at_start"])
    lines += [
        f"One process on {machine['cpus']} x {machine['cpu_model']}, Python "
        f"{machine['python']}, {doc['seconds_per_figure']} s per figure; load average at "
        f"start {load}.",
        "",
    ]
    table = [[r["body"], f"{r['bytes']:,}", r["operation"], r["us_per_call"]] for r in doc["rows"]]
    headers = ["body", "bytes", "operation", "CPU µs per call"]
    lines.append(report.markdown_table(headers, table))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wire_decode", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.2 s per figure instead of 2 s")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--name", help="result file stem (default wire_decode / -quick)")
    args = parser.parse_args(argv)
    seconds = 0.2 if args.quick else 2.0
    bodies = (("typical", typical_body()), ("long", long_body()))
    counter = CellCounter("wire_decode", [1.0] * (len(bodies) * 4))
    rows: list[dict[str, Any]] = []
    for name, body in bodies:
        view = decode_chat_completion(body)
        actions: dict[str, Callable[[], object]] = {
            "decode + validate": partial(decode_chat_completion, body),
            "upstream body": partial(view.upstream_body, body, "demo"),
            "rewrite: include_usage": partial(rewrite_request, body, include_usage=True),
            "rewrite: model + include_usage": partial(
                rewrite_request, body, model="served", include_usage=True
            ),
        }
        for operation, action in actions.items():
            counter.start(f"{name} body, {operation}")
            us = per_call_us(action, seconds)
            rows.append({"body": name, "bytes": len(body), "operation": operation,
                         "us_per_call": round(us, 2)})  # fmt: skip
            counter.finish()
    counter.close()
    stem = args.name or ("wire_decode-quick" if args.quick else "wire_decode")
    doc: dict[str, Any] = {
        "benchmark": "wire_decode",
        "name": stem,
        "quick": bool(args.quick),
        "command": report.command_line("wire_decode", argv),
        "machine": report.machine(),
        "seconds_per_figure": seconds,
        "rows": rows,
    }
    written = report.write_results(args.out, stem, doc, render)
    print(render(doc))
    report.print_written(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
