"""A ledger that one bad row cannot stop: values made storable, refused rows set aside, an
unreachable database waited out, reads that answer 503 instead of hanging."""

from __future__ import annotations

import json
import math
from pathlib import Path

import anyio
import pytest

from benchmarks.cut_relay import CutRelay
from tests.support.ledger import execute_sql, ledger_row, stored_rows
from warmgate.proxy.ledger import DEAD_LETTER_FILE, UsageFilter, open_ledger
from warmgate.proxy.ledger.sanitizer import MAX_TEXT_CHARS, MAX_TOKENS, TEXT_FIELDS
from warmgate.proxy.store.outage import StoreUnavailable

# NUL, other C0 controls, an ANSI escape, DEL, a C1 control (NEL) and a lone surrogate.
POISON = "a\x00b\x01c\x1b[31m\x7fd\x85e\ud800f"
UNSTORABLE = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}

SQLITE_REFUSE_POISON = """
CREATE TRIGGER refuse_poison BEFORE INSERT ON warmgate_ledger
WHEN NEW.endpoint = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END;
"""
POSTGRES_REFUSE_POISON = """
CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
BEGIN
    IF NEW.endpoint = 'poison' THEN
        RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER refuse_poison BEFORE INSERT ON warmgate_ledger
FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


def storable(text: str | None) -> bool:
    if text is None:
        return True
    surrogates = any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    return len(text) <= MAX_TEXT_CHARS and not surrogates and not set(text) & UNSTORABLE


@pytest.mark.anyio
async def test_control_characters_in_every_text_field_are_cleaned_and_every_row_lands(
    store_url: str, tmp_path: Path
) -> None:
    poisoned = [
        ledger_row(f"req_{field}", **{field: POISON})
        for field in TEXT_FIELDS
        if field != "request_id"
    ]
    poisoned += [
        ledger_row(f"req{POISON}"),
        ledger_row("req_long_model", model="m" * 100_000),
        ledger_row("req_long_key", key_id="k" * 10_000),  # an indexed column
        ledger_row("req_tokens", prompt_tokens=2**70, completion_tokens=-5, status=2**40),
        ledger_row("req_timings", queue_ms=math.inf, ttft_ms=math.nan),
    ]
    good = [ledger_row(f"req_good_{i}") for i in range(50)]
    rows = [*good[:25], *poisoned, *good[25:]]
    async with open_ledger(store_url, flush_interval_s=3600, data_dir=tmp_path) as ledger:
        for row in rows:
            ledger.record(row)
        assert await ledger.flush() == len(rows)
        (total,) = await ledger.usage(UsageFilter(), None)
        assert total.requests == len(rows)
        assert ledger.dead_letters.count == 0
    stored = await stored_rows(store_url)
    assert len(stored) == len(rows)
    for row in stored:
        assert all(storable(getattr(row, field)) for field in TEXT_FIELDS), row
    by_id = {row.request_id: row for row in stored}
    assert all(by_id[row.request_id] == row for row in good)  # clean rows are untouched
    assert by_id["req_model"].model == "a\ufffdb\ufffdc\ufffd[31m\ufffdd\ufffde\ufffdf"
    assert by_id["req_tokens"].prompt_tokens == MAX_TOKENS
    assert by_id["req_tokens"].completion_tokens == 0
    assert by_id["req_timings"].ttft_ms is None


@pytest.mark.anyio
async def test_a_row_the_database_refuses_is_set_aside_and_the_rest_of_its_batch_lands(
    store_url: str, tmp_path: Path
) -> None:
    rows = [ledger_row(f"req_{i}") for i in range(100)]
    rows[17] = ledger_row("req_17", endpoint="poison")
    rows[80] = ledger_row("req_80", endpoint="poison")
    async with open_ledger(store_url, flush_interval_s=3600, data_dir=tmp_path) as ledger:
        trigger = SQLITE_REFUSE_POISON if store_url.startswith("sqlite") else POSTGRES_REFUSE_POISON
        await execute_sql(store_url, trigger)
        for row in rows:
            ledger.record(row)
        assert await ledger.flush() == 98
        assert ledger.pending == 0
        assert ledger.dead_letters.count == 2
        # Billing goes on: later rows land, and usage answers.
        ledger.record(ledger_row("req_after"))
        assert await ledger.flush() == 1
        (total,) = await ledger.usage(UsageFilter(), None)
        assert total.requests == 99
    lines = (tmp_path / DEAD_LETTER_FILE).read_text().splitlines()
    kept = [json.loads(line) for line in lines]
    assert sorted(letter["row"]["request_id"] for letter in kept) == ["req_17", "req_80"]
    assert {letter["error"] for letter in kept} <= {"IntegrityError", "CheckViolationError"}


@pytest.mark.postgres
@pytest.mark.anyio
async def test_an_unreachable_store_keeps_its_rows_queued_and_sets_none_aside(
    postgres_url: str, relay: CutRelay, tmp_path: Path
) -> None:
    url = relay.url_for(postgres_url)
    async with open_ledger(url, flush_interval_s=3600, data_dir=tmp_path) as ledger:
        relay.reset()
        for i in range(20):
            ledger.record(ledger_row(f"req_{i}"))
        with pytest.raises(StoreUnavailable):
            await ledger.flush()
        assert ledger.pending == 20
        assert ledger.dead_letters.count == 0
        relay.restore()
        assert await ledger.flush() == 20
    assert len(await stored_rows(postgres_url)) == 20


@pytest.mark.postgres
@pytest.mark.anyio
async def test_reads_through_a_partition_raise_store_unavailable_instead_of_hanging(
    postgres_url: str, relay: CutRelay, tmp_path: Path
) -> None:
    url = relay.url_for(postgres_url)
    ledger = open_ledger(url, read_timeout_s=0.5, write_timeout_s=0.5, data_dir=tmp_path)
    async with ledger:
        ledger.record(ledger_row("req_1"))
        relay.partition()
        with anyio.fail_after(30):  # a hang guard, not a measurement
            with pytest.raises(StoreUnavailable):
                await ledger.usage(UsageFilter(), None)
            with pytest.raises(StoreUnavailable):
                await ledger.store.get("req_2")
        relay.restore()
        (total,) = await ledger.usage(UsageFilter(), None)
        assert total.requests == 1
