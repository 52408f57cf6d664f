"""The console's reports against the rows they sum: the same figures on SQLite and PostgreSQL,
and the same as plain Python computes from the rows (percentiles as `percentile_cont`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.console.seed import (
    DAY_S,
    expected_latency,
    expected_usage,
    seed_days,
    seeded_rows,
)
from warmgate.proxy.ledger import Ledger, LedgerRow, UsageFilter, open_ledger
from warmgate.proxy.ledger.reports import LatencySeries, LedgerReports, UsageSeries, interpolate

pytestmark = pytest.mark.anyio

KEYS = ["key_alice", "key_bob", "key_carol"]
MODELS = {"demo": "demo@http://10.0.0.1:30000", "other": "other@http://10.0.0.2:30000"}
DAYS = seed_days(time.time())
ROWS = seeded_rows(DAYS, keys=KEYS, models=MODELS)
RANGE = UsageFilter(start=DAYS[0], end=DAYS[-1] + DAY_S)


@pytest.fixture
async def ledger(store_url: str) -> AsyncIterator[Ledger]:
    ledger = open_ledger(store_url)
    await ledger.start()
    try:
        await ledger.store.insert(ROWS)
        yield ledger
    finally:
        await ledger.close()


def _points(report_series: list[UsageSeries]) -> dict[tuple[str | None, int], tuple[int, int, int]]:
    out = {}
    for series in report_series:
        for p in series.points:
            out[(series.group, p.t)] = (p.requests, p.billed_requests, p.revenue_micro_usd)
    return out


async def test_usage_per_day_and_model_sums_every_row(ledger: Ledger) -> None:
    report = await LedgerReports(ledger).usage(RANGE, bucket_s=DAY_S, group_by="model", top=10)
    assert _points(report.series) == expected_usage(ROWS, lambda r: r.model)
    assert [g.group for g in report.groups] == ["other", "demo"]  # most requests first
    by_group = {g.group: g for g in report.groups}
    demo = [r for r in ROWS if r.model == "demo"]
    assert by_group["demo"].requests == len(demo)
    assert by_group["demo"].revenue_micro_usd == sum(r.cost_micro_usd for r in demo)
    assert by_group["demo"].cached_tokens == sum(r.cached_tokens for r in demo)


async def test_usage_per_hour_puts_each_row_in_its_hour(ledger: Ledger) -> None:
    report = await LedgerReports(ledger).usage(RANGE, bucket_s=3600, group_by="none", top=10)
    assert _points(report.series) == expected_usage(ROWS, lambda r: None, bucket_s=3600)
    assert [(s.group, s.other) for s in report.series] == [(None, False)]


async def test_usage_keeps_the_top_keys_and_sums_the_rest_into_other(ledger: Ledger) -> None:
    report = await LedgerReports(ledger).usage(RANGE, bucket_s=DAY_S, group_by="key", top=2)
    top = [g.group for g in report.groups[:2]]
    assert top == ["key_carol", "key_bob"]
    assert [(s.group, s.other) for s in report.series] == [
        ("key_carol", False),
        ("key_bob", False),
        (None, True),
    ]
    other = expected_usage([r for r in ROWS if r.key_id not in top], lambda r: None)
    assert {t: v for (_, t), v in _points(report.series[2:]).items()} == {
        t: v for (_, t), v in other.items()
    }


async def test_usage_filters_by_key_model_and_time(ledger: Ledger) -> None:
    where = UsageFilter(key_id="key_bob", model="other", start=DAYS[1], end=DAYS[2])
    report = await LedgerReports(ledger).usage(where, bucket_s=DAY_S, group_by="model", top=10)
    chosen = [
        r
        for r in ROWS
        if r.key_id == "key_bob" and r.model == "other" and DAYS[1] <= r.started_at < DAYS[2]
    ]
    assert _points(report.series) == expected_usage(chosen, lambda r: r.model)


def _latency(series: list[LatencySeries]) -> dict[tuple[str | None, int], dict[str, float | None]]:
    out = {}
    for s in series:
        for p in s.points:
            figures = {
                name: getattr(p, name) for name in p.__struct_fields__ if name.endswith("_ms")
            }
            figures["requests"] = float(p.requests)
            out[(s.group, p.t)] = figures
    return out


@pytest.mark.parametrize("group_by", ["model", "backend"])
async def test_latency_percentiles_are_percentile_cont_of_the_answered_rows(
    ledger: Ledger, group_by: str
) -> None:
    series = await LedgerReports(ledger).latency(
        RANGE,
        bucket_s=DAY_S,
        group_by=group_by,  # type: ignore[arg-type]
    )
    column = {"model": lambda r: r.model, "backend": lambda r: r.backend}[group_by]
    expected = expected_latency(ROWS, column)
    got = _latency(series)
    assert got.keys() == expected.keys()
    for cell, figures in expected.items():
        assert got[cell] == pytest.approx(figures, abs=1e-3), cell


async def test_backend_traffic_counts_server_errors_and_cached_tokens(ledger: Ledger) -> None:
    traffic = await LedgerReports(ledger).backends(DAYS[0])
    other = [r for r in ROWS if r.backend == MODELS["other"]]
    seen = traffic[MODELS["other"]]
    assert seen.requests == len(other)
    assert seen.server_errors == sum(1 for r in other if r.status >= 500)
    assert seen.cache_hit_rate == pytest.approx(
        sum(r.cached_tokens for r in other) / sum(r.prompt_tokens for r in other)
    )


async def test_reports_read_this_edges_rows_not_yet_flushed(store_url: str) -> None:
    ledger = open_ledger(store_url, flush_interval_s=3600)
    await ledger.start()
    try:
        row: LedgerRow = ROWS[0]
        ledger.record(row)
        report = await LedgerReports(ledger).usage(RANGE, bucket_s=DAY_S, group_by="none", top=1)
        assert report.groups[0].requests == 1
    finally:
        await ledger.close()


async def test_a_disabled_ledger_reports_nothing() -> None:
    ledger = open_ledger("sqlite:///unused.db", enabled=False)
    reports = LedgerReports(ledger)
    assert (await reports.usage(RANGE, bucket_s=DAY_S, group_by="model", top=3)).groups == []
    assert await reports.latency(RANGE, bucket_s=DAY_S, group_by="model") == []
    assert await reports.backends(0.0) == {}


def test_interpolation_between_ranks_matches_percentile_cont() -> None:
    values = [1.0, 2.0, 4.0, 8.0]
    ranked = dict(enumerate(values))
    assert interpolate(ranked, 4, 0.5) == 3.0
    assert interpolate(ranked, 4, 0.95) == pytest.approx(4.0 + 4.0 * 0.85)
    assert interpolate({0: 5.0}, 1, 0.95) == 5.0
    assert interpolate({}, 0, 0.5) is None
