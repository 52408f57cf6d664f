"""The ledger's rows as a test makes them and reads them back: straight from the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from warmgate.proxy.ledger import LedgerRow, UsageFilter, open_ledger_store
from warmgate.proxy.ledger.spool import segment_rows

T0 = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC


def ledger_row(request_id: str, **fields: Any) -> LedgerRow:
    """A billed chat completion of key_a on `demo`, with `fields` changed."""
    values: dict[str, Any] = {
        "key_id": "key_a",
        "model": "demo",
        "backend": "b0",
        "endpoint": "/v1/chat/completions",
        "stream": False,
        "started_at": T0,
        "finished_at": T0 + 0.5,
        "status": 200,
        "billed": True,
        "billed_reason": "completed",
        "price_micro_usd": 1000,
        "prompt_tokens": 10,
        "cached_tokens": 4,
        "completion_tokens": 7,
    }
    values.update(fields)
    return LedgerRow(request_id=request_id, **values)


async def stored_rows(url: str, where: UsageFilter | None = None) -> list[LedgerRow]:
    """Every row (or those `where` selects) in the ledger store at `url`."""
    store = open_ledger_store(url)
    await store.start()
    try:
        return await store.rows(where or UsageFilter())
    finally:
        await store.close()


async def execute_sql(url: str, script: str) -> None:
    """Run `script` on the database at `url` (a test's own schema changes)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.executescript(script)
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(script)
    finally:
        await conn.close()


def spooled_rows(directory: Path) -> list[LedgerRow]:
    """The rows in the spool segments under `directory` (the ledger's `spool_directory`)."""
    return [
        row
        for segment in sorted(directory.glob("*.spool"))
        for row in segment_rows(segment.read_bytes())[0]
    ]
