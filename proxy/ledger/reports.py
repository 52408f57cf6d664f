"""The console's reports: usage and latency over time, and traffic per backend, summed in SQL.

Every figure is aggregated by the database, on SQLite and PostgreSQL alike, and only the
aggregates cross into Python: one row per time bucket and group, never one per request.

- Usage: requests, billed requests, revenue and tokens per bucket (an hour or a day, UTC) and
  group (model, key or backend); the totals of every group over the range, and the series of
  the `top` groups by requests with the rest summed into one `other` series, all from one scan.
- Latency: time to first token, total time and the gateway's own time before forwarding
  (`queue_ms`), p50 and p95 per bucket and group, over the requests that were answered (2xx).
  Percentiles are PostgreSQL's `percentile_cont` (linear interpolation between the two nearest
  ranks). SQLite has no percentile aggregate: a window function numbers each bucket's values in
  order and the query returns only the (at most four) values at the ranks around p50 and p95,
  which are interpolated the same way, so both databases give the same figures.
- Backends: requests, 5xx answers and prompt/cached tokens per backend since a time (the
  fleet page's cache-hit rate).

Reads flush this edge's ledger first, so an edge always sees its own writes.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import msgspec

from warmgate.proxy.ledger.rollup import HOUR_S, SUMS, UsageRollup, rolled_span, source_sql
from warmgate.proxy.ledger.stores import PostgresLedgerStore, SqliteLedgerStore
from warmgate.proxy.ledger.usage import TABLE, UsageFilter, where_sql
from warmgate.proxy.ledger.writer import Ledger
from warmgate.proxy.store.database import Dialect

Bucket = Literal["hour", "day"]
UsageGroup = Literal["model", "key", "backend", "none"]
LatencyGroup = Literal["model", "backend"]
BUCKET_S: dict[Bucket, int] = {"hour": 3600, "day": 86400}
PERCENTILES = (0.5, 0.95)
LATENCY_METRICS = ("ttft_ms", "total_ms", "queue_ms")
_COLUMN = {"model": "model", "key": "key_id", "backend": "backend", "none": "NULL"}
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


class LatencyPoint(msgspec.Struct, kw_only=True):
    t: int
    requests: int  # answered requests in the bucket
    ttft_p50_ms: float | None  # None: no request with a first token (e.g. embeddings only)
    ttft_p95_ms: float | None
    total_p50_ms: float | None
    total_p95_ms: float | None
    queue_p50_ms: float | None
    queue_p95_ms: float | None


class LatencySeries(msgspec.Struct, kw_only=True):
    group: str | None
    points: list[LatencyPoint]


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


def bucket_sql(dialect: Dialect, bucket_s: int, column: str = "started_at") -> str:
    """The start of a time's bucket in unix seconds (UTC-aligned: unix time has no offset)."""
    if dialect == "sqlite":  # CAST truncates toward zero: the floor of a positive time
        return f"CAST({column} / {bucket_s} AS INTEGER) * {bucket_s}"
    return f"CAST(floor({column} / {bucket_s}) AS BIGINT) * {bucket_s}"


def _where(dialect: Dialect, where: UsageFilter, *extra: str) -> tuple[str, list[object]]:
    condition, params = where_sql(dialect, where)
    clauses = [condition.removeprefix(" WHERE ")] if condition else []
    clauses += extra
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


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
    column = _COLUMN[group_by] if group_by != "none" else "''"
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


def _rank_sql(p: float, floor_or_ceil: str) -> str:
    """0-based rank below or above the p-quantile among n values: floor/ceil(p * (n - 1))."""
    position = f"({p!r} * (n - 1))"
    floor = f"CAST({position} AS INTEGER)"
    if floor_or_ceil == "floor":
        return floor
    return f"({floor} + ({position} > {floor}))"


def latency_sql(
    dialect: Dialect, where: UsageFilter, bucket_s: int, group_by: LatencyGroup
) -> list[tuple[str, list[object]]]:
    """PostgreSQL: one query of (t, group, n, [p50, p95] per metric). SQLite: one query per
    metric of (t, group, n, rank, value), the values at the ranks around each percentile."""
    answered = "status >= 200 AND status < 300"
    column = _COLUMN[group_by]
    bucket = bucket_sql(dialect, bucket_s)
    if dialect == "postgresql":
        condition, params = _where(dialect, where, answered)
        ranks = ", ".join(repr(p) for p in PERCENTILES)
        percentiles = ", ".join(
            f"percentile_cont(ARRAY[{ranks}]) WITHIN GROUP (ORDER BY {metric})"
            for metric in LATENCY_METRICS
        )
        sql = (
            f"SELECT {bucket} AS t, COALESCE({column}, '') AS grp, COUNT(*), "  # noqa: S608
            f"{percentiles} FROM {TABLE}{condition} GROUP BY 1, 2"
        )
        return [(sql, params)]
    queries = []
    wanted = ", ".join(_rank_sql(p, side) for p in PERCENTILES for side in ("floor", "ceil"))
    for metric in LATENCY_METRICS:
        condition, params = _where(dialect, where, answered, f"{metric} IS NOT NULL")
        sql = (
            f"WITH ranked AS (SELECT {bucket} AS t, "  # noqa: S608 constants only
            f"COALESCE({column}, '') AS grp, {metric} AS v, "
            f"ROW_NUMBER() OVER (PARTITION BY {bucket}, {column} ORDER BY {metric}) - 1 AS i, "
            f"COUNT(*) OVER (PARTITION BY {bucket}, {column}) AS n "
            f"FROM {TABLE}{condition}) "
            f"SELECT t, grp, n, i, v FROM ranked WHERE i IN ({wanted})"
        )
        queries.append((sql, params))
    return queries


def backend_traffic_sql(dialect: Dialect, start: float) -> tuple[str, list[object]]:
    condition, params = _where(dialect, UsageFilter(start=start), "backend IS NOT NULL")
    return (
        "SELECT backend, COUNT(*), "  # noqa: S608 constants only
        "SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END), "
        "SUM(prompt_tokens), SUM(cached_tokens) "
        f"FROM {TABLE}{condition} GROUP BY backend ORDER BY backend",
        params,
    )


def interpolate(ranked: dict[int, float], n: int, p: float) -> float | None:
    """`percentile_cont(p)` from the values at ranks floor and ceil of p * (n - 1)."""
    if n == 0:
        return None
    position = p * (n - 1)
    low, high = math.floor(position), math.ceil(position)
    if low not in ranked or high not in ranked:
        return None
    return ranked[low] + (ranked[high] - ranked[low]) * (position - low)


def _group(value: object) -> str | None:
    return None if value in ("", None) else str(value)


def usage_report(records: Sequence[Sequence[Any]]) -> UsageReport:
    totals: list[UsageTotals] = []
    series: dict[tuple[str | None, bool], list[UsagePoint]] = {}
    for t, group, other, *sums in records:
        values = [int(v or 0) for v in sums]
        if t is None:
            totals.append(
                UsageTotals(
                    group=_group(group),
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
        series.setdefault((None if other else _group(group), bool(other)), []).append(point)
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


def _latency_point(t: int, n: int, figures: dict[str, tuple[float | None, ...]]) -> LatencyPoint:
    def figure(metric: str, index: int) -> float | None:
        values = figures.get(metric)
        value = None if values is None else values[index]
        return None if value is None else round(float(value), 3)

    return LatencyPoint(
        t=t,
        requests=n,
        ttft_p50_ms=figure("ttft_ms", 0),
        ttft_p95_ms=figure("ttft_ms", 1),
        total_p50_ms=figure("total_ms", 0),
        total_p95_ms=figure("total_ms", 1),
        queue_p50_ms=figure("queue_ms", 0),
        queue_p95_ms=figure("queue_ms", 1),
    )


def _series(points: dict[tuple[str | None, int], LatencyPoint]) -> list[LatencySeries]:
    by_group: dict[str | None, list[LatencyPoint]] = {}
    for (group, _), point in sorted(
        points.items(), key=lambda item: (item[0][0] or "", item[0][1])
    ):
        by_group.setdefault(group, []).append(point)
    return [LatencySeries(group=group, points=series) for group, series in by_group.items()]


def pg_latency(records: Sequence[Sequence[Any]]) -> list[LatencySeries]:
    points: dict[tuple[str | None, int], LatencyPoint] = {}
    for t, group, n, *arrays in records:
        figures = {
            metric: tuple(values) if values is not None else (None, None)
            for metric, values in zip(LATENCY_METRICS, arrays, strict=True)
        }
        points[(_group(group), int(t))] = _latency_point(int(t), int(n), figures)
    return _series(points)


def sqlite_latency(per_metric: Sequence[Sequence[Sequence[Any]]]) -> list[LatencySeries]:
    """From each metric's rows of (t, group, n, rank, value), as `latency_sql` returns them."""
    counts: dict[tuple[str | None, int], dict[str, int]] = {}
    ranked: dict[tuple[str | None, int], dict[str, dict[int, float]]] = {}
    for metric, records in zip(LATENCY_METRICS, per_metric, strict=True):
        for t, group, n, rank, value in records:
            cell = (_group(group), int(t))
            counts.setdefault(cell, {})[metric] = int(n)
            ranked.setdefault(cell, {}).setdefault(metric, {})[int(rank)] = float(value)
    points = {}
    for cell, metrics in counts.items():
        figures = {
            metric: tuple(interpolate(ranked[cell][metric], n, p) for p in PERCENTILES)
            for metric, n in metrics.items()
        }
        # every answered row has a total time: its count is the bucket's
        points[cell] = _latency_point(cell[1], metrics.get("total_ms", 0), figures)
    return _series(points)


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
        rollup = self._rollup
        store = self._ledger.store
        if rollup is not None and rollup.due():
            await self._ledger.flush()
            if isinstance(store, SqliteLedgerStore):
                await store.run(rollup.refresh_sqlite)
            elif isinstance(store, PostgresLedgerStore):
                await rollup.refresh_postgres(store.pool)
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
        store = self._ledger.store
        records = await self._fetch(lambda dialect: latency_sql(dialect, where, bucket_s, group_by))
        if not records:
            return []
        if isinstance(store, PostgresLedgerStore):
            return pg_latency(records[0])
        return sqlite_latency(records)

    async def backends(self, since: float) -> dict[str, BackendTraffic]:
        records = await self._fetch(lambda dialect: [backend_traffic_sql(dialect, since)])
        return backend_traffic(records[0]) if records else {}

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
