"""The console's reports against the rows they sum: the same figures on SQLite and PostgreSQL,
and the same as plain Python computes from the rows (percentiles as `percentile_cont`)."""

from __future__ import annotations

import itertools
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
from warmgate.proxy.ledger.percentiles import LatencySeries, interpolate
from warmgate.proxy.ledger.reports import LedgerReports, UsageSeries
from warmgate.proxy.ledger.rollup import UsageRollup

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


# The usage report reads rows only, or an hourly rollup that holds part of the seeded days (the
# clock in the middle of the second day), or all of them: the figures must not change.
ROLLUP_CLOCKS = {
    "rows only": None,
    "half rolled": DAYS[1] + 12 * 3600,
    "all rolled": DAYS[-1] + 2 * DAY_S,
}


@pytest.fixture(params=list(ROLLUP_CLOCKS))
def reports(ledger: Ledger, request: pytest.FixtureRequest) -> LedgerReports:
    now = ROLLUP_CLOCKS[request.param]
    if now is None:
        return LedgerReports(ledger)
    return LedgerReports(ledger, rollup=UsageRollup(clock=lambda: now))


def _points(report_series: list[UsageSeries]) -> dict[tuple[str | None, int], tuple[int, int, int]]:
    out = {}
    for series in report_series:
        for p in series.points:
            out[(series.group, p.t)] = (p.requests, p.billed_requests, p.revenue_micro_usd)
    return out


async def test_usage_per_day_and_model_sums_every_row(reports: LedgerReports) -> None:
    report = await reports.usage(RANGE, bucket_s=DAY_S, group_by="model", top=10)
    assert _points(report.series) == expected_usage(ROWS, lambda r: r.model)
    assert [g.group for g in report.groups] == ["other", "demo"]  # most requests first
    by_group = {g.group: g for g in report.groups}
    demo = [r for r in ROWS if r.model == "demo"]
    assert by_group["demo"].requests == len(demo)
    assert by_group["demo"].revenue_micro_usd == sum(r.cost_micro_usd for r in demo)
    assert by_group["demo"].cached_tokens == sum(r.cached_tokens for r in demo)


async def test_usage_per_hour_puts_each_row_in_its_hour(reports: LedgerReports) -> None:
    report = await reports.usage(RANGE, bucket_s=3600, group_by="none", top=10)
    assert _points(report.series) == expected_usage(ROWS, lambda r: None, bucket_s=3600)
    assert [(s.group, s.other) for s in report.series] == [(None, False)]


async def test_usage_keeps_the_top_keys_and_sums_the_rest_into_other(
    reports: LedgerReports,
) -> None:
    report = await reports.usage(RANGE, bucket_s=DAY_S, group_by="key", top=2)
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


async def test_usage_filters_by_key_model_and_time(reports: LedgerReports) -> None:
    where = UsageFilter(key_id="key_bob", model="other", start=DAYS[1], end=DAYS[2])
    report = await reports.usage(where, bucket_s=DAY_S, group_by="model", top=10)
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
@pytest.mark.parametrize("bucket_s", [3600, DAY_S])
async def test_latency_percentiles_are_percentile_cont_of_the_answered_rows(
    reports: LedgerReports, group_by: str, bucket_s: int
) -> None:
    series = await reports.latency(
        RANGE,
        bucket_s=bucket_s,
        group_by=group_by,  # type: ignore[arg-type]
    )
    column = {"model": lambda r: r.model, "backend": lambda r: r.backend}[group_by]
    expected = expected_latency(ROWS, column, bucket_s=bucket_s)
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
        reports = LedgerReports(ledger, rollup=UsageRollup())
        report = await reports.usage(RANGE, bucket_s=DAY_S, group_by="none", top=1)
        assert report.groups[0].requests == 1
    finally:
        await ledger.close()


async def test_a_row_written_after_its_hour_was_rolled_is_counted_at_the_next_refresh(
    ledger: Ledger,
) -> None:
    ticks = [0.0]
    rollup = UsageRollup(
        clock=lambda: DAYS[-1] + 2 * DAY_S, refresh_s=60, monotonic=lambda: ticks[0]
    )
    reports = LedgerReports(ledger, rollup=rollup)
    before = await reports.usage(RANGE, bucket_s=DAY_S, group_by="none", top=1)
    assert rollup.rolled_until == DAYS[-1] + DAY_S + DAY_S - 2 * 3600
    late = LedgerRow(
        **{
            **{name: getattr(ROWS[0], name) for name in ROWS[0].__struct_fields__},
            "request_id": "req_late",
            "started_at": DAYS[-1] + 5 * 3600 + 1,
        }
    )
    await ledger.store.insert([late])
    ticks[0] += 59  # not yet due: the rollup still holds the hour without it
    stale = await reports.usage(RANGE, bucket_s=DAY_S, group_by="none", top=1)
    assert stale.groups[0].requests == before.groups[0].requests
    ticks[0] += 1
    after = await reports.usage(RANGE, bucket_s=DAY_S, group_by="none", top=1)
    assert after.groups[0].requests == before.groups[0].requests + 1
    assert after.groups[0].revenue_micro_usd == before.groups[0].revenue_micro_usd + 2000
    assert after == await LedgerReports(ledger).usage(RANGE, bucket_s=DAY_S, group_by="none", top=1)
    for bucket_s in (3600, DAY_S):
        assert await reports.latency(
            RANGE, bucket_s=bucket_s, group_by="model"
        ) == await LedgerReports(ledger).latency(RANGE, bucket_s=bucket_s, group_by="model")


async def test_a_long_history_is_rolled_a_chunk_per_refresh_with_the_same_figures(
    ledger: Ledger,
) -> None:
    ticks = [0.0]
    now = DAYS[-1] + 2 * DAY_S
    chunk_s = 6 * 3600
    rollup = UsageRollup(clock=lambda: now, budget_s=0, chunk_s=chunk_s, monotonic=lambda: ticks[0])
    reports = LedgerReports(ledger, rollup=rollup)
    rows_only = LedgerReports(ledger)
    first_hour = int(min(r.started_at for r in ROWS) // 3600 * 3600)
    settled = int((now - 2 * 3600) // 3600 * 3600)
    steps = []
    while rollup.rolled_until is None or rollup.rolled_until < settled:
        usage = await reports.usage(RANGE, bucket_s=3600, group_by="model", top=10)
        assert usage == await rows_only.usage(RANGE, bucket_s=3600, group_by="model", top=10)
        latency = await reports.latency(RANGE, bucket_s=DAY_S, group_by="backend")
        assert latency == await rows_only.latency(RANGE, bucket_s=DAY_S, group_by="backend")
        steps.append(rollup.rolled_until)
        ticks[0] += 60
    assert steps[0] == first_hour + chunk_s
    assert steps[-1] == settled
    assert all(b - a == chunk_s for a, b in itertools.pairwise(steps[:-1]))  # type: ignore[operator]
    assert len(steps) == -(-(settled - first_hour) // chunk_s)


async def test_edges_sharing_a_store_roll_each_hour_once(ledger: Ledger) -> None:
    now = DAYS[-1] + 2 * DAY_S
    first = LedgerReports(ledger, rollup=UsageRollup(clock=lambda: now))
    second = LedgerReports(ledger, rollup=UsageRollup(clock=lambda: now))
    expected = await LedgerReports(ledger).usage(RANGE, bucket_s=3600, group_by="key", top=10)
    assert await first.usage(RANGE, bucket_s=3600, group_by="key", top=10) == expected
    assert await second.usage(RANGE, bucket_s=3600, group_by="key", top=10) == expected


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
