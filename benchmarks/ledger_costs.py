"""What the ledger's and the bindings' durability costs per request.

- `Ledger.record` per row: without a spool, and with it (the row made storable, encoded and
  copied into the mapped spool segment), plus the parts alone.
- Response bindings: the wait an answer that creates a response pays for its binding's write,
  a lookup of a response another edge made (one database read), and one this edge knows
  (memory), on SQLite and PostgreSQL.

    python -m benchmarks.ledger_costs            # ~30 s
    python -m benchmarks.ledger_costs --quick    # ~10 s
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import report
from warmgate.proxy.ledger import Ledger, LedgerRow, open_ledger_store
from warmgate.proxy.ledger.sanitizer import sanitized
from warmgate.proxy.ledger.spool import Spool
from warmgate.proxy.routing.bindings import Binding, ResponseBindings
from warmgate.proxy.store.bindings import open_binding_store


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ledger_costs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rows and lookups")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL for the bindings (a schema of its own is created and dropped)",
    )
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR, help="results folder")
    return parser.parse_args(argv)


def row(i: int) -> LedgerRow:
    return LedgerRow(
        request_id=f"chatcmpl-{i:032x}",
        key_id="key_3f2a9c",
        model="demo",
        backend="demo@http://10.0.0.7:30000",
        endpoint="chat.completions",
        stream=True,
        started_at=1_795_000_000.0 + i,
        finished_at=1_795_000_000.5 + i,
        status=200,
        billed=True,
        billed_reason="completed",
        price_micro_usd=2000,
        prompt_tokens=812,
        cached_tokens=512,
        completion_tokens=164,
        queue_ms=0.21,
        ttft_ms=48.0,
        total_ms=2100.0,
    )


def per_call_us(fn: Callable[[int], object], calls: int, repeats: int) -> float:
    """The median over `repeats` runs of the CPU time of one call, in microseconds."""
    runs = []
    for _ in range(repeats):
        started = time.process_time()
        for i in range(calls):
            fn(i)
        runs.append((time.process_time() - started) / calls * 1e6)
    return statistics.median(runs)


async def record_costs(workdir: Path, rows: int, repeats: int) -> dict[str, float]:
    prepared = [row(i) for i in range(rows)]
    poisoned = row(0)
    poisoned.model = "m\x00"
    store = open_ledger_store(f"sqlite:///{workdir / 'unused.db'}")  # never started: no I/O
    plain = Ledger(store, batch_rows=10**9, max_pending=10**9)
    spool = Spool(workdir / "spool")
    spooled = Ledger(store, batch_rows=10**9, max_pending=10**9, spool=spool)
    append_only = Spool(workdir / "append")
    costs = {
        "record_without_spool_us": per_call_us(lambda i: plain.record(prepared[i]), rows, repeats),
        "record_with_spool_us": per_call_us(lambda i: spooled.record(prepared[i]), rows, repeats),
        "sanitize_clean_row_us": per_call_us(lambda i: sanitized(prepared[i]), rows, repeats),
        "sanitize_poisoned_row_us": per_call_us(lambda _: sanitized(poisoned), rows, repeats),
        "spool_append_us": per_call_us(lambda i: append_only.append(prepared[i]), rows, repeats),
        "spool_bytes_per_row": spool.bytes / (rows * repeats),
    }
    spool.close(keep=False)
    append_only.close(keep=False)
    return costs


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


async def binding_costs(url: str, lookups: int) -> dict[str, Any]:
    made = Binding("key_3f2a9c", "demo", "demo@http://10.0.0.7:30000")
    edge_a = ResponseBindings(open_binding_store(url))
    edge_b = ResponseBindings(open_binding_store(url))
    await edge_a.start()
    await edge_b.start()
    try:
        ids = [f"resp_{secrets.token_hex(16)}" for _ in range(lookups)]
        writes = []
        for response_id in ids:
            started = time.perf_counter()
            await edge_a.landed(edge_a.bind(response_id, made))
            writes.append(time.perf_counter() - started)
        misses = []
        for response_id in ids:  # edge B never saw them: one read each
            started = time.perf_counter()
            assert await edge_b.find(response_id, made.key_id) == made
            misses.append(time.perf_counter() - started)
        hits = []
        for response_id in ids:  # now in edge B's memory
            started = time.perf_counter()
            await edge_b.find(response_id, made.key_id)
            hits.append(time.perf_counter() - started)
    finally:
        await edge_a.close()
        await edge_b.close()
    return {
        "bind_until_written": percentiles_ms(writes),
        "find_made_elsewhere": percentiles_ms(misses),
        "find_known_here": percentiles_ms(hits),
    }


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rows, repeats, lookups = (20_000, 3, 200) if args.quick else (100_000, 5, 1000)
    result: dict[str, Any] = {
        "command": report.command_line("ledger_costs", args.argv),
        "machine": report.machine(),
        "record": await record_costs(workdir, rows, repeats),
        "bindings": {"sqlite": await binding_costs(f"sqlite:///{workdir / 'b.db'}", lookups)},
    }
    schema = f"wg_costs_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(args.postgres)
    except OSError as exc:
        result["bindings"]["postgresql"] = f"not measured: {type(exc).__name__}"
        return result
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in args.postgres else "?"
        url = f"{args.postgres}{separator}search_path={schema}"
        result["bindings"]["postgresql"] = await binding_costs(url, lookups)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
    return result


def markdown(result: dict[str, Any]) -> str:
    record = result["record"]
    lines = [
        f"Command: `{result['command']}`",
        "",
        report.markdown_table(
            ["per row (CPU)", "µs"],
            [
                ["Ledger.record, no spool", record["record_without_spool_us"]],
                ["Ledger.record, spooled", record["record_with_spool_us"]],
                ["  make storable, a clean row", record["sanitize_clean_row_us"]],
                ["  make storable, a row with a NUL", record["sanitize_poisoned_row_us"]],
                [
                    "  spool append (encode + copy into the mapped segment)",
                    record["spool_append_us"],
                ],
                ["spool bytes per row", record["spool_bytes_per_row"]],
            ],
        ),
        "",
    ]
    rows = []
    for engine, costs in result["bindings"].items():
        if isinstance(costs, str):
            rows.append([engine, costs, "", "", "", "", ""])
            continue
        rows.append(
            [
                engine,
                costs["bind_until_written"]["p50_ms"],
                costs["bind_until_written"]["p99_ms"],
                costs["find_made_elsewhere"]["p50_ms"],
                costs["find_made_elsewhere"]["p99_ms"],
                costs["find_known_here"]["p50_ms"],
                costs["find_known_here"]["p99_ms"],
            ]
        )
    headers = [
        "bindings",
        "bind, written p50 ms",
        "p99",
        "find, made elsewhere p50 ms",
        "p99",
        "find, known here p50 ms",
        "p99",
    ]
    lines.append(report.markdown_table(headers, rows))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = argv
    with tempfile.TemporaryDirectory(prefix="warmgate-ledger-costs-") as workdir:
        result = asyncio.run(run(args, Path(workdir)))
    name = "ledger_costs-quick" if args.quick else "ledger_costs"
    report.write_json(args.out / f"{name}.json", result)
    text = markdown(result)
    (args.out / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
