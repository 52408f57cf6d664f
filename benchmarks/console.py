"""How fast the console's JSON endpoints answer over a month of ledger rows.

Seeds a fresh PostgreSQL schema (or a SQLite file) with a month of rows ending now, 100 keys
(1,000,000 rows by default, three models on two backends each, keys drawn from a skewed
distribution), starts a gateway on it in this process, and times every console endpoint over
the views the console offers (the last 24 hours by hour, the last 7 days by hour, the last 30
days by day, and by key), each over real HTTP with the admin key, several times.

    python -m benchmarks.console                      # PostgreSQL at 127.0.0.1:5432/test
    python -m benchmarks.console --store sqlite       # the one-edge SQLite ledger
    python -m benchmarks.console --rows 200000 --repeat 3

Before the edge starts, the rollup of the whole month is built in one go (timed: an edge does the
same over several refreshes, about a second at a time); the edge's first report (a
refresh with nothing new to roll) is timed on its own, and the views after it read the rollup for
whole settled hours and days and the ledger's rows for the rest.

Writes benchmarks/results/console.{json,md} (the .md is the committed summary).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn

from benchmarks.gateway import REPO_ROOT
from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.server import base_url, bind
from warmgate.proxy.keys.issue import KeySpec, issue_key
from warmgate.proxy.keys.store import open_key_store
from warmgate.proxy.ledger import LedgerRow, UsageFilter, open_ledger, open_ledger_store
from warmgate.proxy.ledger.reports import LedgerReports
from warmgate.proxy.ledger.rollup import UsageRollup
from warmgate.proxy.ledger.row import FIELDS
from warmgate.proxy.settings import parse_settings

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
ADMIN_KEY = "wg-bench-admin-" + "0" * 32
MODELS = ("llama", "qwen", "deepseek")
MONTH_S = 30 * 86400
BATCH_ROWS = 50_000
RESULTS = REPO_ROOT / "benchmarks" / "results"
VIEWS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("usage, 24 h by hour and model", "/admin/reports/usage", {"bucket": "hour"}),
    ("usage, 7 d by hour and model", "/admin/reports/usage", {"bucket": "hour", "days": "7"}),
    ("usage, 30 d by day and model", "/admin/reports/usage", {"bucket": "day"}),
    ("usage, 30 d by day and key", "/admin/reports/usage", {"bucket": "day", "group_by": "key"}),
    ("latency, 24 h by hour and model", "/admin/reports/latency", {"bucket": "hour"}),
    (
        "latency, 7 d by hour and backend",
        "/admin/reports/latency",
        {"bucket": "hour", "days": "7", "group_by": "backend"},
    ),
    ("latency, 30 d by day and model", "/admin/reports/latency", {"bucket": "day"}),
    ("fleet (last hour)", "/admin/reports/fleet", {}),
    ("keys list", "/admin/keys", {}),
)


def month_rows(
    count: int, keys: list[str], end: float, rng: random.Random
) -> list[tuple[Any, ...]]:
    start = end - MONTH_S
    backends = {
        m: [f"{m}@http://10.0.{i}.{j}:30000" for j in range(2)] for i, m in enumerate(MODELS)
    }
    rows = []
    for i in range(count):
        started = start + MONTH_S * i / count
        model = rng.choice(MODELS)
        key = keys[min(int(rng.paretovariate(1.2)) - 1, len(keys) - 1)]
        status = 200 if rng.random() < 0.97 else rng.choice((429, 502))
        ttft = rng.lognormvariate(5, 0.5) if status == 200 else None
        total = (ttft or 1.0) + rng.lognormvariate(7, 0.6)
        prompt = rng.randint(10, 4000)
        row = LedgerRow(
            request_id=f"req_bench_{i:09d}",
            key_id=key,
            model=model,
            backend=None if status == 429 else rng.choice(backends[model]),
            endpoint="/v1/chat/completions",
            stream=True,
            started_at=started,
            finished_at=started + total / 1000,
            status=status,
            billed=status == 200,
            billed_reason="completed" if status == 200 else "client_error",
            price_micro_usd=2000,
            prompt_tokens=prompt,
            cached_tokens=rng.randint(0, prompt),
            completion_tokens=rng.randint(1, 800),
            queue_ms=rng.lognormvariate(-1, 0.5),
            ttft_ms=ttft,
            total_ms=total,
        )
        rows.append(tuple(getattr(row, name) for name in FIELDS))
    return rows


async def seed(url: str, rows: int, end: float) -> None:
    keys = open_key_store(url)
    await keys.start()
    try:
        ids = [(await issue_key(keys, KeySpec(name=f"customer-{i:03d}")))[0].id for i in range(100)]
    finally:
        await keys.close()
    ledger = open_ledger_store(url)
    await ledger.start()
    await ledger.close()
    rng = random.Random(1)
    if url.startswith("postgresql"):
        schema = url.rpartition("search_path=")[2]
        conn = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": schema})
        try:
            for first in range(0, rows, BATCH_ROWS):
                batch = month_rows(min(BATCH_ROWS, rows - first), ids, end, rng)
                await conn.copy_records_to_table(
                    "warmgate_ledger",
                    records=[(f"{r[0]}_{first}", *r[1:]) for r in batch],
                    columns=FIELDS,
                )
            await conn.execute("ANALYZE warmgate_ledger")
        finally:
            await conn.close()
        return
    store = open_ledger_store(url)
    await store.start()
    try:
        for first in range(0, rows, BATCH_ROWS):
            batch = month_rows(min(BATCH_ROWS, rows - first), ids, end, rng)
            await store.insert(
                [
                    LedgerRow(**dict(zip(FIELDS, (f"{r[0]}_{first}", *r[1:]), strict=True)))
                    for r in batch
                ]
            )
    finally:
        await store.close()


async def build_rollup(url: str) -> None:
    """Roll every settled hour of the ledger at once, as the edge would over several refreshes."""
    ledger = open_ledger(url)
    await ledger.start()
    try:
        reports = LedgerReports(ledger, rollup=UsageRollup(budget_s=float("inf")))
        await reports.usage(UsageFilter(), bucket_s=86400, group_by="none", top=1)
    finally:
        await ledger.close()


class Edge:
    """The gateway on a loopback port, in a thread of this process."""

    def __init__(self, ledger_url: str) -> None:
        settings = parse_settings(
            {
                "auth": {"admin_key_env": "BENCH_ADMIN_KEY"},
                "health": {"enabled": False},
                "ledger": {"url": ledger_url},
                "models": [
                    {"name": m, "backends": [{"url": f"http://127.0.0.1:9/{m}"}]} for m in MODELS
                ],
            }
        )
        self.app = create_app(settings, environ={"BENCH_ADMIN_KEY": ADMIN_KEY})
        self.sock = bind("127.0.0.1", 0)
        self.root = base_url(self.sock).removesuffix("/v1")
        config = uvicorn.Config(self.app, lifespan="on", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Edge:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()


def time_views(root: str, end: float, repeat: int) -> list[dict[str, Any]]:
    results = []
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=root, headers=headers, timeout=300) as http:
        # The edge's first report refreshes its rollup (checks the last two days' counts).
        began = time.perf_counter()
        http.get("/admin/reports/usage").raise_for_status()
        first_ms = round((time.perf_counter() - began) * 1000, 1)
        results.append(
            {
                "view": "first report of the edge (refreshes the rollup)",
                "path": "/admin/reports/usage",
                "params": {},
                "median_ms": first_ms,
                "min_ms": first_ms,
                "max_ms": first_ms,
                "bytes": 0,
            }
        )
        print(f"first report of the edge (refreshes the rollup): {first_ms:.0f} ms")
        for label, path, view in VIEWS:
            params = dict(view)
            days = float(params.pop("days", "1" if params.get("bucket") == "hour" else "30"))
            if path not in {"/admin/reports/fleet", "/admin/keys"}:
                params.update({"start": str(end - days * 86400), "end": str(end)})
            times_ms = []
            size = 0
            for _ in range(repeat):
                began = time.perf_counter()
                answer = http.get(path, params=params)
                times_ms.append((time.perf_counter() - began) * 1000)
                answer.raise_for_status()
                size = len(answer.content)
            results.append(
                {
                    "view": label,
                    "path": path,
                    "params": params,
                    "median_ms": round(statistics.median(times_ms), 1),
                    "min_ms": round(min(times_ms), 1),
                    "max_ms": round(max(times_ms), 1),
                    "bytes": size,
                }
            )
            print(
                f"{label:38} median {results[-1]['median_ms']:8.1f} ms  "
                f"min {results[-1]['min_ms']:8.1f}  max {results[-1]['max_ms']:8.1f}  {size:,} B"
            )
    return results


def report(
    results: list[dict[str, Any]], args: argparse.Namespace, seed_s: float, rollup_s: float
) -> str:
    lines = [
        f"# Console endpoints over a month of ledger rows ({args.store})",
        "",
        f"{args.rows:,} rows over 30 days ending now, 100 keys, 3 models on 6 backends; "
        f"each view requested {args.repeat} times over HTTP with the admin key "
        f"(`python -m benchmarks.console --store {args.store} --rows {args.rows}`). "
        f"Seeding took {seed_s:.0f} s; building the rollup of the whole month in one go "
        f"{rollup_s:.1f} s (an edge rolls its history six hours at a time, about a second per "
        "refresh, while its reports read rows for what is not rolled yet).",
        "",
        "| view | median ms | min ms | max ms | answer bytes |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['view']} | {r['median_ms']} | {r['min_ms']} | {r['max_ms']} | {r['bytes']:,} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"


async def _schema(statement: str) -> None:
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    end = time.time()
    schema = f"wg_bench_console_{secrets.token_hex(4)}"
    workdir = tempfile.TemporaryDirectory()
    if args.store == "postgresql":
        asyncio.run(_schema(f"CREATE SCHEMA {schema}"))
        url = f"{POSTGRES_DSN}?search_path={schema}"
    else:
        url = f"sqlite:///{Path(workdir.name) / 'warmgate.db'}"
    try:
        began = time.perf_counter()
        asyncio.run(seed(url, args.rows, end))
        seed_s = time.perf_counter() - began
        print(f"seeded {args.rows:,} rows in {seed_s:.0f} s")
        began = time.perf_counter()
        asyncio.run(build_rollup(url))
        rollup_s = time.perf_counter() - began
        print(f"built the rollup of the month in {rollup_s:.1f} s")
        with Edge(url) as edge:
            results = time_views(edge.root, end, args.repeat)
    finally:
        if args.store == "postgresql":
            asyncio.run(_schema(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        workdir.cleanup()
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "console" if args.store == "postgresql" else f"console-{args.store}"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{name}.md").write_text(report(results, args, seed_s, rollup_s))
    print(f"Wrote:\n  benchmarks/results/{name}.json\n  benchmarks/results/{name}.md")


if __name__ == "__main__":
    main()
