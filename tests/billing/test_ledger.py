"""The ledger: the billing rule, exactly-once rows, batching, draining, usage sums."""

from __future__ import annotations

from decimal import Decimal

import anyio
import anyio.lowlevel
import pytest

from tests.support.ledger import T0, ledger_row
from warmgate.proxy.ledger import (
    BilledReason,
    Ledger,
    UsageFilter,
    billing_decision,
    format_usd,
    open_ledger,
    open_ledger_store,
    to_micro_usd,
)
from warmgate.proxy.ledger.stores import SqliteLedgerStore
from warmgate.proxy.store.database import parse_store_url

DAY = 86_400.0
make_row = ledger_row


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"status": 200, "completed": True, "delivered_tokens": 0, "cancelled": False},
            (True, BilledReason.COMPLETED),
        ),
        (
            {"status": 200, "completed": False, "delivered_tokens": 1, "cancelled": True},
            (True, BilledReason.PARTIAL_STREAM),
        ),
        (
            {"status": 200, "completed": False, "delivered_tokens": 0, "cancelled": True},
            (False, BilledReason.CANCELLED_BEFORE_ANSWER),
        ),
        (
            {"status": 200, "completed": False, "delivered_tokens": 5, "cancelled": False},
            (False, BilledReason.BACKEND_ERROR),
        ),  # the backend cut the stream
        (
            {"status": 429, "completed": False, "delivered_tokens": 0, "cancelled": False},
            (False, BilledReason.CLIENT_ERROR),
        ),
        (
            {"status": 400, "completed": True, "delivered_tokens": 0, "cancelled": False},
            (False, BilledReason.CLIENT_ERROR),
        ),
        (
            {"status": 502, "completed": False, "delivered_tokens": 0, "cancelled": False},
            (False, BilledReason.BACKEND_ERROR),
        ),
        (
            {
                "status": 503,
                "completed": False,
                "delivered_tokens": 0,
                "cancelled": False,
                "error_code": "no_healthy_backend",
            },
            (False, BilledReason.NO_BACKEND),
        ),
    ],
)
def test_the_billing_rule_bills_only_answers_the_backend_produced(
    kwargs: dict[str, object], expected: tuple[bool, BilledReason]
) -> None:
    assert billing_decision(**kwargs) == expected  # type: ignore[arg-type]


def test_prices_are_exact_integer_micro_usd() -> None:
    assert to_micro_usd("0.002") == 2000
    assert to_micro_usd(Decimal("0.0000015")) == 2
    assert to_micro_usd(0.001) == 1000
    assert format_usd(2000) == "0.002000"
    assert format_usd(123_456_789) == "123.456789"


@pytest.mark.anyio
async def test_rows_are_written_once_even_when_flushed_again_and_after_a_restart(
    store_url: str,
) -> None:
    rows = [make_row(f"req_{i}", billed=i % 3 != 0) for i in range(30)]
    async with open_ledger(store_url) as ledger:
        for row in rows:
            ledger.record(row)
        assert await ledger.flush() == 30
        for row in rows[:10]:  # a re-flush of the same request ids
            ledger.record(row)
        assert await ledger.flush() == 0
    async with open_ledger(store_url) as restarted:  # migrations run again: a no-op
        for row in rows:
            restarted.record(row)
        assert await restarted.flush() == 0
        stored = await restarted.rows(UsageFilter())
        assert sorted(r.request_id for r in stored) == sorted(r.request_id for r in rows)
        assert await restarted.get("req_4") == rows[4]


@pytest.mark.anyio
async def test_close_drains_every_recorded_row(store_url: str) -> None:
    ledger = open_ledger(store_url, flush_interval_s=3600, batch_rows=10_000)
    await ledger.start()
    for i in range(257):
        ledger.record(make_row(f"req_{i}"))
    await ledger.close()
    store = open_ledger_store(store_url)
    await store.start()
    try:
        assert len(await store.rows(UsageFilter())) == 257
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_full_batch_is_flushed_without_waiting_for_the_window(sqlite_url: str) -> None:
    ledger = open_ledger(sqlite_url, flush_interval_s=3600, batch_rows=5)
    async with ledger:
        written = ledger.store
        for i in range(5):
            ledger.record(make_row(f"req_{i}"))
        # The writer task wakes on the full batch (the window is an hour): yield until it wrote.
        with anyio.fail_after(10):
            while ledger.pending:
                await anyio.lowlevel.checkpoint()
        assert len(await written.rows(UsageFilter())) == 5


@pytest.mark.anyio
async def test_a_failed_flush_keeps_its_rows_for_the_next_one(sqlite_url: str) -> None:
    store = open_ledger_store(sqlite_url)
    ledger = Ledger(store, flush_interval_s=3600)
    ledger.record(make_row("req_1"))
    with pytest.raises(RuntimeError):  # the store is not started yet: the insert fails
        await ledger.flush()
    assert ledger.pending == 1
    await ledger.start()
    await ledger.flush()
    assert ledger.pending == 0
    assert await store.get("req_1") == make_row("req_1")
    await ledger.close()


@pytest.mark.anyio
async def test_usage_sums_by_day_model_and_key_equal_the_rows(store_url: str) -> None:
    rows = [
        make_row("r1"),
        make_row("r2", model="big", price_micro_usd=5000),
        make_row("r3", billed=False, billed_reason="backend_error", status=502),
        make_row("r4", started_at=T0 + DAY, prompt_tokens=100),
        make_row("r5", key_id="key_b"),
    ]
    async with open_ledger(store_url) as ledger:
        for row in rows:
            ledger.record(row)
        mine = UsageFilter(key_id="key_a")
        (total,) = await ledger.usage(mine, None)
        assert (total.requests, total.billed_requests, total.cost_micro_usd) == (4, 3, 7000)
        assert (total.prompt_tokens, total.cached_tokens, total.completion_tokens) == (130, 16, 28)
        by_day = await ledger.usage(mine, "day")
        assert [(b.group, b.requests, b.cost_micro_usd) for b in by_day] == [
            ("2026-11-18", 3, 6000),
            ("2026-11-19", 1, 1000),
        ]
        by_model = await ledger.usage(mine, "model")
        assert [(b.group, b.billed_requests) for b in by_model] == [("big", 1), ("demo", 2)]
        by_key = await ledger.usage(UsageFilter(), "key")
        assert [(b.group, b.requests) for b in by_key] == [("key_a", 4), ("key_b", 1)]
        window = await ledger.usage(UsageFilter(key_id="key_a", start=T0 + DAY / 2), None)
        assert window[0].requests == 1
        nothing = await ledger.usage(UsageFilter(key_id="key_nobody"), None)
        assert (nothing[0].requests, nothing[0].cost_micro_usd) == (0, 0)


@pytest.mark.anyio
async def test_a_sqlite_flush_runs_a_few_multi_row_statements_not_one_per_row(
    sqlite_url: str,
) -> None:
    # one statement per row (executemany) hands the GIL back and forth with the event loop
    # once per row; a few multi-row INSERTs hand it over a few times per flush
    store = SqliteLedgerStore(parse_store_url(sqlite_url))
    await store.start()
    try:
        statements: list[str] = []
        await store.run(lambda conn: conn.set_trace_callback(statements.append))
        rows = [make_row(f"req_{i}") for i in range(600)]
        assert await store.insert(rows) == 600
        inserts = [s for s in statements if s.startswith("INSERT INTO warmgate_ledger")]
        assert len(inserts) == 5  # 256 + 256 + 64 + 16 + 8 rows
        assert statements[0] == "BEGIN IMMEDIATE"
        assert statements[-1] == "COMMIT"
        assert await store.insert(rows[:300]) == 0  # still idempotent on the request id
        await store.run(lambda conn: conn.set_trace_callback(None))
        stored = await store.rows(UsageFilter())
        assert sorted(r.request_id for r in stored) == sorted(r.request_id for r in rows)
        assert await store.get("req_599") == rows[599]
    finally:
        await store.close()
