"""A gateway over a seeded ledger for the console tests, and a browser-like login."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx

from tests.billing.edge import ADMIN_KEY, Edge, edge_settings, running_edge, sim_cluster
from tests.console.seed import seed_days, seeded_rows
from warmgate.proxy.keys.issue import KeySpec, issue_key
from warmgate.proxy.keys.store import open_key_store
from warmgate.proxy.ledger import LedgerRow, open_ledger_store

KEY_NAMES = ("alice", "bob", "carol")


async def _seed(url: str, rows: list[LedgerRow], names: tuple[str, ...]) -> list[str]:
    keys = open_key_store(url)
    await keys.start()
    try:
        ids = [(await issue_key(keys, KeySpec(name=name)))[0].id for name in names]
    finally:
        await keys.close()
    ledger = open_ledger_store(url)
    await ledger.start()
    try:
        await ledger.insert([_with_key(row, ids) for row in rows])
    finally:
        await ledger.close()
    return ids


def _with_key(row: LedgerRow, ids: list[str]) -> LedgerRow:
    index = int(row.key_id.rpartition("_")[2]) if row.key_id else 0
    return LedgerRow(**{**_fields(row), "key_id": ids[index]})


def _fields(row: LedgerRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__struct_fields__}


RECENT_PROMPT_TOKENS = 1000
RECENT_CACHED_TOKENS = 250


def recent_rows(backend: str, started_at: float) -> list[LedgerRow]:
    return [
        LedgerRow(
            request_id=f"req_recent_{i}",
            key_id="key_0",
            model="demo",
            backend=backend,
            endpoint="/v1/chat/completions",
            stream=False,
            started_at=started_at + i,
            finished_at=started_at + i + 0.5,
            status=200,
            billed=True,
            billed_reason="completed",
            price_micro_usd=2000,
            prompt_tokens=RECENT_PROMPT_TOKENS,
            cached_tokens=RECENT_CACHED_TOKENS,
            completion_tokens=10,
            ttft_ms=50.0,
            total_ms=500.0,
        )
        for i in range(4)
    ]


class SeededEdge:
    """The running edge, the rows in its ledger (with the real key ids) and the seeded days."""

    def __init__(self, edge: Edge, rows: list[LedgerRow], days: list[float], key_ids: list[str]):
        self.edge = edge
        self.rows = rows
        self.days = days
        self.key_ids = key_ids
        self.names = dict(zip(key_ids, KEY_NAMES, strict=True))


@contextmanager
def seeded_edge(ledger_url: str) -> Iterator[SeededEdge]:
    """An edge whose ledger holds the seeded days for keys alice, bob and carol, and (for the
    fleet page) four requests ten minutes ago on the edge's own demo backend, a quarter of their
    prompt tokens cached."""
    cluster = sim_cluster(time_scale=0.01)
    try:
        backend = f"demo@{cluster.urls[0].rstrip('/')}"
        days = seed_days(time.time())
        template = seeded_rows(
            days,
            keys=[f"key_{i}" for i in range(len(KEY_NAMES))],
            models={"demo": backend, "other": f"other@{cluster.urls[0].rstrip('/')}"},
        )
        template += recent_rows(backend, time.time() - 600)
        # A thread of its own: the caller's thread may already run an event loop (Playwright's).
        with ThreadPoolExecutor(max_workers=1) as thread:
            ids = thread.submit(asyncio.run, _seed(ledger_url, template, KEY_NAMES)).result()
        rows = [_with_key(row, ids) for row in template]
        with running_edge(edge_settings(ledger_url, cluster.urls)) as edge:
            yield SeededEdge(edge, rows, days, ids)
    finally:
        cluster.stop()


def login(http: httpx.Client, key: str, *, origin: str | None = None) -> httpx.Response:
    """The login form as a browser sends it: its token cookie and hidden field, then the key."""
    form = http.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    headers = {"origin": origin} if origin else {}
    return http.post(
        "/console/login", data={"key": key, "login_token": token.group(1)}, headers=headers
    )


__all__ = ["ADMIN_KEY", "SeededEdge", "login", "seeded_edge"]
