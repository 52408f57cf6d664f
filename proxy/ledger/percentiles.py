"""Latency percentiles per time bucket and group, the same on SQLite and PostgreSQL.

Time to first token, total time and the gateway's own time before forwarding (`queue_ms`), p50
and p95 per bucket and group (model or backend), over the requests that were answered (2xx).
PostgreSQL computes them with `percentile_cont` (linear interpolation between the two nearest
ranks). SQLite has no percentile aggregate: a window function numbers each bucket's values in
order and the query returns only the (at most four) values at the ranks around p50 and p95,
which are interpolated the same way, so both databases give the same figures. The usage reports
and the rollup share the bucket and filter helpers below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from warmgate.proxy.ledger.usage import TABLE, UsageFilter, where_sql
from warmgate.proxy.store.database import Dialect

LatencyGroup = Literal["model", "backend"]
PERCENTILES = (0.5, 0.95)
LATENCY_METRICS = ("ttft_ms", "total_ms", "queue_ms")
COLUMN = {"model": "model", "key": "key_id", "backend": "backend", "none": "NULL"}


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


def bucket_sql(dialect: Dialect, bucket_s: int, column: str = "started_at") -> str:
    """The start of a time's bucket in unix seconds (UTC-aligned: unix time has no offset)."""
    if dialect == "sqlite":  # CAST truncates toward zero: the floor of a positive time
        return f"CAST({column} / {bucket_s} AS INTEGER) * {bucket_s}"
    return f"CAST(floor({column} / {bucket_s}) AS BIGINT) * {bucket_s}"


def where_clause(dialect: Dialect, where: UsageFilter, *extra: str) -> tuple[str, list[object]]:
    condition, params = where_sql(dialect, where)
    clauses = [condition.removeprefix(" WHERE ")] if condition else []
    clauses += extra
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


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
    column = COLUMN[group_by]
    bucket = bucket_sql(dialect, bucket_s)
    if dialect == "postgresql":
        condition, params = where_clause(dialect, where, answered)
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
        condition, params = where_clause(dialect, where, answered, f"{metric} IS NOT NULL")
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


def interpolate(ranked: dict[int, float], n: int, p: float) -> float | None:
    """`percentile_cont(p)` from the values at ranks floor and ceil of p * (n - 1)."""
    if n == 0:
        return None
    position = p * (n - 1)
    low, high = math.floor(position), math.ceil(position)
    if low not in ranked or high not in ranked:
        return None
    return ranked[low] + (ranked[high] - ranked[low]) * (position - low)


def group_value(value: object) -> str | None:
    return None if value in ("", None) else str(value)


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
        points[(group_value(group), int(t))] = _latency_point(int(t), int(n), figures)
    return _series(points)


def sqlite_latency(per_metric: Sequence[Sequence[Sequence[Any]]]) -> list[LatencySeries]:
    """From each metric's rows of (t, group, n, rank, value), as `latency_sql` returns them."""
    counts: dict[tuple[str | None, int], dict[str, int]] = {}
    ranked: dict[tuple[str | None, int], dict[str, dict[int, float]]] = {}
    for metric, records in zip(LATENCY_METRICS, per_metric, strict=True):
        for t, group, n, rank, value in records:
            cell = (group_value(group), int(t))
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


def rolled_latency(records: Sequence[Sequence[Any]]) -> list[LatencySeries]:
    """Series from the rollup's rows of (t, group, requests, six figures)."""
    points: dict[tuple[str | None, int], LatencyPoint] = {}
    for t, group, requests, *figures in records:
        values = [None if v is None else round(float(v), 3) for v in figures]
        points[(group_value(group), int(t))] = LatencyPoint(
            t=int(t),
            requests=int(requests),
            ttft_p50_ms=values[0],
            ttft_p95_ms=values[1],
            total_p50_ms=values[2],
            total_p95_ms=values[3],
            queue_p50_ms=values[4],
            queue_p95_ms=values[5],
        )
    return _series(points)


def merge_series(parts: Sequence[list[LatencySeries]]) -> list[LatencySeries]:
    """One series per group from several sets over disjoint buckets, points in time order."""
    merged: dict[str | None, list[LatencyPoint]] = {}
    for part in parts:
        for series in part:
            merged.setdefault(series.group, []).extend(series.points)
    return [
        LatencySeries(group=group, points=sorted(points, key=lambda p: p.t))
        for group, points in sorted(merged.items(), key=lambda item: item[0] or "")
    ]
