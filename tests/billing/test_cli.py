"""`warmgate keys` and `warmgate usage` against a real SQLite store."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.billing.test_ledger import make_row
from warmgate.proxy.cli import main
from warmgate.proxy.keys import KeyRing, open_key_store
from warmgate.proxy.ledger import open_ledger


def keys(url: str, *argv: str) -> int:
    return main(["keys", "--db", url, *argv])


async def ring_from(url: str) -> KeyRing:
    store = open_key_store(url)
    await store.start()
    try:
        ring = KeyRing()
        ring.replace(await store.load())
        return ring
    finally:
        await store.close()


def test_keys_create_prints_the_secret_once_and_list_never_shows_it(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["create", "--name", "team-a", "--models", "demo,big", "--rpm", "60"]
    assert keys(sqlite_url, *argv, "--concurrency", "4", "--quota", "1000/day") == 0
    created = capsys.readouterr().out
    secret = re.search(r"wg-\S+", created)
    assert secret is not None
    key = asyncio.run(ring_from(sqlite_url)).authenticate(f"Bearer {secret.group()}")
    assert (key.name, key.rpm, key.max_concurrency) == ("team-a", 60, 4)
    assert (key.quota, key.quota_period) == (1000, "day")
    assert key.allowed_models == frozenset({"demo", "big"})

    assert keys(sqlite_url, "list") == 0
    listed = capsys.readouterr().out
    assert "team-a" in listed
    assert "big,demo" in listed
    assert "1000/day" in listed
    assert secret.group() not in listed


def test_keys_update_changes_only_what_is_given_and_revoke_locks_the_key_out(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys(sqlite_url, "create", "--name", "b", "--rpm", "10", "--concurrency", "2")
    out = capsys.readouterr().out
    key_id = re.search(r"key_[0-9a-f]+", out).group()  # type: ignore[union-attr]
    secret = re.search(r"wg-\S+", out).group()  # type: ignore[union-attr]
    assert keys(sqlite_url, "update", key_id, "--rpm", "none", "--quota", "5/month") == 0
    key = asyncio.run(ring_from(sqlite_url)).authenticate(f"Bearer {secret}")
    assert (key.rpm, key.max_concurrency, key.quota, key.quota_period) == (None, 2, 5, "month")
    assert keys(sqlite_url, "update", key_id, "--quota", "5/week") == 2
    assert "N/day or N/month" in capsys.readouterr().err
    assert keys(sqlite_url, "revoke", key_id) == 0
    assert keys(sqlite_url, "revoke", "key_missing") == 1
    assert asyncio.run(ring_from(sqlite_url)).get(key_id).revoked  # type: ignore[union-attr]


async def _record(url: str) -> None:
    async with open_ledger(url) as ledger:
        ledger.record(make_row("r1"))
        ledger.record(make_row("r2", model="big", price_micro_usd=5000))
        ledger.record(make_row("r3", billed=False, billed_reason="backend_error", status=502))


def test_usage_prints_a_table_whose_sums_are_the_rows(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_record(sqlite_url))
    assert main(["usage", "--db", sqlite_url, "--key", "key_a", "--by", "model"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "group",
        "requests",
        "billed",
        "cost_usd",
        "prompt",
        "cached",
        "completion",
    ]
    assert lines[1].split() == ["big", "1", "1", "0.005000", "10", "4", "7"]
    assert lines[2].split() == ["demo", "2", "1", "0.001000", "20", "8", "14"]
    assert main(["usage", "--db", sqlite_url, "--since", "2030-01-01"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:4] == ["total", "0", "0", "0.000000"]
