"""The console's reports: usage and latency over time, and traffic per backend, summed in SQL.

Every figure is aggregated by the database, on SQLite and PostgreSQL alike, and only the
aggregates cross into Python: one row per time bucket and group, never one per request.

- Usage: requests, billed requests, revenue and tokens per bucket (an hour or a day, UTC) and
  group (model, key or backend); the totals of every group over the range, and the series of
  the `top` groups by requests with the rest summed into one `other` series, all in one query.
- Latency: TTFT, total time and `queue_ms`, p50 and p95 per bucket and group
  (`proxy.ledger.percentiles`).
- Backends: requests, 5xx answers and prompt/cached tokens per backend since a time (the
  fleet page's cache-hit rate).

With a rollup (`proxy.ledger.rollup`), settled hours and days are read from it and only the
rest of the range from the ledger's rows, with the same figures. Reads flush this edge's ledger
first, so an edge always sees its own writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import msgspec

from warmgate.proxy.ledger.percentiles import (
    COLUMN,
    LATENCY_METRICS,
    LatencyGroup,
    LatencySeries,
    bucket_sql,
    group_value,
    latency_sql,
    merge_series,
    pg_latency,
    rolled_latency,
    sqlite_latency,
    where_clause,
)
from warmgate.proxy.ledger.rollup import (
    HOUR_S,
    SUMS,
    UsageRollup,
    latency_select_sql,
    rolled_span,
    source_sql,
)
from warmgate.proxy.ledger.stores import PostgresLedgerStore, SqliteLedgerStore
from warmgate.proxy.ledger.usage import TABLE, UsageFilter
from warmgate.proxy.ledger.writer import Ledger
from warmgate.proxy.store.database import Dialect

Bucket = Literal["hour", "day"]
UsageGroup = Literal["model", "key", "backend", "none"]
BUCKET_S: dict[Bucket, int] = {"hour": 3600, "day": 86400}
_FAR_FUTURE_S = 1e12
# A percentile sorts every row of the range; PostgreSQL's default 4 MB spills a month to disk.
_PG_REPORT_WORK_MEM = "64MB"

T = TypeVar("T")


class UsageTotals(msgspec.Struct, kw_only=True):
    group: str | None  # the model, key id or backend; None: rows without one (or group "none")
    requests: int = 0
    billed_requests: int = 0
    revenue_micro_usd: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0


class UsagePoint(msgspec.Struct, kw_only=True):
    t: int  # the bucket's start, unix seconds (UTC)
    requests: int
    billed_requests: int
    revenue_micro_usd: int


class UsageSeries(msgspec.Struct, kw_only=True):
    group: str | None
    other: bool  # the sum of every group outside the top ones
    points: list[UsagePoint]


class UsageReport(msgspec.Struct, kw_only=True):
    groups: list[UsageTotals]  # every group, most requests first
    series: list[UsageSeries]  # the top groups in that order, then `other` if any


class BackendTraffic(msgspec.Struct, kw_only=True):
    backend: str
    requests: int
    server_errors: int
    prompt_tokens: int
    cached_tokens: int

    @property
    def cache_hit_rate(self) -> float | None:
        """The share of prompt tokens the backend's prefix cache served."""
        return None if self.prompt_tokens == 0 else self.cached_tokens / self.prompt_tokens


def usage_report_sql(
    dialect: Dialect,
    where: UsageFilter,
    bucket_s: int,
    group_by: UsageGroup,
    top: int,
    *,
    rolled_until: int | None = None,
) -> tuple[str, list[object]]:
    """Rows of (t, group, other, requests, billed, revenue, prompt, cached, completion): the
    totals per group have t NULL; the series rows carry the top groups and one `other`. The
    whole hours the rollup holds (up to `rolled_until`) are read from it, the rest from rows."""
    start = where.start if where.start is not None else 0.0
    end = where.end if where.end is not None else _FAR_FUTURE_S
    filters = [(c, v) for c, v in (("model", where.model), ("key_id", where.key_id)) if v]
    span = rolled_span(start, end, rolled_until) if bucket_s % HOUR_S == 0 else None
    source, params = source_sql(dialect, start=start, end=end, span=span, filters=filters)
    column = COLUMN[group_by] if group_by != "none" else "''"
    names = SUMS[1:]
    sums = ", ".join(f"SUM({name})" for name in SUMS)
    named_sums = ", ".join(f"SUM({name}) AS {name}" for name in SUMS)
    in_top = "grp IN (SELECT grp FROM top)"
    sql = (
        f"WITH src AS ({source}), "  # noqa: S608 identifiers are constants, values parameters
        f"buckets AS (SELECT {bucket_sql(dialect, bucket_s, 'ts')} AS t, {column} AS grp, "
        f"{named_sums} FROM src GROUP BY 1, 2), "
        f"totals AS (SELECT grp, {named_sums} FROM buckets GROUP BY grp), "
        f"top AS (SELECT grp FROM totals ORDER BY requests DESC, grp LIMIT {int(top)}) "
        f"SELECT CAST(NULL AS BIGINT), grp, 0, requests, {', '.join(names)} FROM totals "
        f"UNION ALL SELECT t, CASE WHEN {in_top} THEN grp ELSE '' END, "
        f"CASE WHEN {in_top} THEN 0 ELSE 1 END, {sums} FROM buckets GROUP BY 1, 2, 3"
    )
    return sql, params


def backend_traffic_sql(dialect: Dialect, start: float) -> tuple[str, list[object]]:
    condition, params = where_clause(dialect, UsageFilter(start=start), "backend IS NOT NULL")
    return (
        "SELECT backend, COUNT(*), "  # noqa: S608 constants only
        "SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END), "
        "SUM(prompt_tokens), SUM(cached_tokens) "
        f"FROM {TABLE}{condition} GROUP BY backend ORDER BY backend",
        params,
    )


def usage_report(records: Sequence[Sequence[Any]]) -> UsageReport:
    totals: list[UsageTotals] = []
    series: dict[tuple[str | None, bool], list[UsagePoint]] = {}
    for t, group, other, *sums in records:
        values = [int(v or 0) for v in sums]
        if t is None:
            totals.append(
                UsageTotals(
                    group=group_value(group),
                    requests=values[0],
                    billed_requests=values[1],
                    revenue_micro_usd=values[2],
                    prompt_tokens=values[3],
                    cached_tokens=values[4],
                    completion_tokens=values[5],
                )
            )
            continue
        point = UsagePoint(
            t=int(t), requests=values[0], billed_requests=values[1], revenue_micro_usd=values[2]
        )
        series.setdefault((None if other else group_value(group), bool(other)), []).append(point)
    totals.sort(key=lambda g: (-g.requests, g.group or ""))
    rank = {g.group: i for i, g in enumerate(totals)}
    ordered = sorted(series.items(), key=lambda item: (item[0][1], rank.get(item[0][0], 0)))
    return UsageReport(
        groups=totals,
        series=[
            UsageSeries(group=group, other=other, points=sorted(points, key=lambda p: p.t))
            for (group, other), points in ordered
        ],
    )


def backend_traffic(records: Sequence[Sequence[Any]]) -> dict[str, BackendTraffic]:
    return {
        str(backend): BackendTraffic(
            backend=str(backend),
            requests=int(requests),
            server_errors=int(errors or 0),
            prompt_tokens=int(prompt or 0),
            cached_tokens=int(cached or 0),
        )
        for backend, requests, errors, prompt, cached in records
    }


class LedgerReports:
    """The reports over one ledger's store; a disabled ledger reports nothing."""

    def __init__(self, ledger: Ledger, *, rollup: UsageRollup | None = None) -> None:
        """`rollup`: the hourly usage rollup the usage report reads (None: rows only)."""
        self._ledger = ledger
        self._rollup = rollup

    async def usage(
        self, where: UsageFilter, *, bucket_s: int, group_by: UsageGroup, top: int
    ) -> UsageReport:
        await self._refresh()
        rollup = self._rollup
        rolled_until = None if rollup is None else rollup.rolled_until
        records = await self._fetch(
            lambda dialect: [
                usage_report_sql(dialect, where, bucket_s, group_by, top, rolled_until=rolled_until)
            ]
        )
        return usage_report(records[0]) if records else UsageReport(groups=[], series=[])

    async def latency(
        self, where: UsageFilter, *, bucket_s: int, group_by: LatencyGroup
    ) -> list[LatencySeries]:
        """Whole settled buckets from the rollup (when no model or key filter narrows the
        rows), every other bucket computed from the ledger's rows."""
        store = self._ledger.store
        await self._refresh()
        rollup = self._rollup
        start = where.start if where.start is not None else 0.0
        end = where.end if where.end is not None else _FAR_FUTURE_S
        span = None
        if rollup is not None and where.model is None and where.key_id is None:
            span = rolled_span(start, end, rollup.rolled_until, bucket_s)
        ranges = [(start, end)] if span is None else [(start, span[0]), (span[1], end)]
        raw = [
            UsageFilter(key_id=where.key_id, model=where.model, start=low, end=high)
            for low, high in ranges
            if low < high
        ]

        def queries(dialect: Dialect) -> list[tuple[str, list[object]]]:
            out = [q for part in raw for q in latency_sql(dialect, part, bucket_s, group_by)]
            if span is not None:
                out.append((latency_select_sql(dialect), [bucket_s, group_by, *span]))
            return out

        records = await self._fetch(queries)
        if not records:
            return []
        rolled = records.pop() if span is not None else []
        if isinstance(store, PostgresLedgerStore):
            parts = [pg_latency(r) for r in records]
        else:
            per = len(LATENCY_METRICS)
            parts = [sqlite_latency(records[i : i + per]) for i in range(0, len(records), per)]
        return merge_series([*parts, rolled_latency(rolled)])

    async def backends(self, since: float) -> dict[str, BackendTraffic]:
        records = await self._fetch(lambda dialect: [backend_traffic_sql(dialect, since)])
        return backend_traffic(records[0]) if records else {}

    async def _refresh(self) -> None:
        """Bring the rollup up to date when it is due (this edge's rows flushed first)."""
        rollup = self._rollup
        store = self._ledger.store
        if rollup is None or not rollup.due():
            return
        await self._ledger.flush()
        if isinstance(store, SqliteLedgerStore):
            await store.run(rollup.refresh_sqlite)
        elif isinstance(store, PostgresLedgerStore):
            await rollup.refresh_postgres(store.pool)

    async def _fetch(
        self, queries: Callable[[Dialect], list[tuple[str, list[object]]]]
    ) -> list[list[Any]]:
        """Each query's rows, after flushing this edge's pending rows."""
        await self._ledger.flush()
        store = self._ledger.store
        if isinstance(store, SqliteLedgerStore):
            statements = queries("sqlite")

            def run(db: sqlite3.Connection) -> list[list[Any]]:
                return [db.execute(sql, params).fetchall() for sql, params in statements]

            return await store.run(run)
        if isinstance(store, PostgresLedgerStore):
            statements = queries("postgresql")
            async with store.pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL work_mem = '{_PG_REPORT_WORK_MEM}'")
                return [list(await conn.fetch(sql, *params)) for sql, params in statements]
        return []
