"""The console's rollup: month views read per-hour sums and percentiles, not a month of rows.

`warmgate_usage_hourly` holds, per hour, model, key and backend, the sums the usage report
needs; `warmgate_usage_hours` lists every rolled hour with the number of ledger rows it summed.
Rolled hours are contiguous, from the ledger's first hour up to `rolled_until`; a report reads
them for the whole hours of its range and sums the ledger's own rows for the rest (the partial
hours at either end and everything after `rolled_until`), so it always covers every row.

An hour is rolled once it has settled: `settle_s` after its end, when the requests that started
in it have finished and been written. The ledger only ever gains rows, so a row written later
than that (a very long stream, an edge's spool replayed after an outage) changes its hour's row
count: every refresh compares the counts of the last `recheck_s` of rolled hours with the ledger
and rolls again each hour that differs. Refreshes run at most every `refresh_s`, from the report
that finds the rollup due, each spending about `budget_s` on new hours, `chunk_s` at a time (a
long history is rolled over several refreshes, oldest first, while reports read rows for the
rest);
on PostgreSQL one edge at a time (an advisory lock: the others read what is there), on SQLite in
one transaction on the ledger's thread.

Latency percentiles cannot be summed, so they are kept per bucket: `warmgate_latency_buckets`
holds each settled hour's and each settled day's p50 and p95 per model and per backend,
computed by the same queries as a report over rows (`proxy.ledger.percentiles`) and computed
again with the hour (and its day) when its row count changes. A report takes whole settled
buckets from there and computes the others from rows.

The tables belong to this module (their own schema component, `usage_rollup`), not to the
ledger's store: the ledger's writes are untouched.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from warmgate.proxy.ledger.percentiles import (
    LatencyGroup,
    LatencySeries,
    latency_sql,
    pg_latency,
    sqlite_latency,
)
from warmgate.proxy.ledger.usage import TABLE, UsageFilter
from warmgate.proxy.store.database import Dialect, migrate_postgres, migrate_sqlite, transaction

HOUR_S = 3600
HOURLY = "warmgate_usage_hourly"
HOURS = "warmgate_usage_hours"
LATENCY = "warmgate_latency_buckets"
DAY_S = 86400
GROUPINGS: tuple[LatencyGroup, ...] = ("model", "backend")
FIGURES = (
    "ttft_p50_ms",
    "ttft_p95_ms",
    "total_p50_ms",
    "total_p95_ms",
    "queue_p50_ms",
    "queue_p95_ms",
)
# A percentile sorts every row of its bucket; PostgreSQL's default 4 MB spills a month to disk.
PG_WORK_MEM = "64MB"
COMPONENT = "usage_rollup"
SETTLE_S = 2 * HOUR_S
RECHECK_S = 2 * 86400
REFRESH_S = 60.0
CHUNK_S = 6 * HOUR_S  # SQLite rolls six hours of a million-row month in about a second
BUDGET_S = 1.0
SUMS = (
    "requests",
    "billed_requests",
    "revenue_micro_usd",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
)
_STEPS = (
    f"""
    CREATE TABLE {HOURLY} (
        hour BIGINT NOT NULL,
        model TEXT NOT NULL,
        key_id TEXT NOT NULL,
        backend TEXT NOT NULL,
        requests BIGINT NOT NULL,
        billed_requests BIGINT NOT NULL,
        revenue_micro_usd BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        PRIMARY KEY (hour, model, key_id, backend)
    );
    CREATE TABLE {HOURS} (hour BIGINT PRIMARY KEY, ledger_rows BIGINT NOT NULL)
    """,
    f"""
    CREATE TABLE {LATENCY} (
        bucket_s BIGINT NOT NULL,
        t BIGINT NOT NULL,
        grouping TEXT NOT NULL,
        grp TEXT NOT NULL,
        requests BIGINT NOT NULL,
        ttft_p50_ms DOUBLE PRECISION,
        ttft_p95_ms DOUBLE PRECISION,
        total_p50_ms DOUBLE PRECISION,
        total_p95_ms DOUBLE PRECISION,
        queue_p50_ms DOUBLE PRECISION,
        queue_p95_ms DOUBLE PRECISION,
        PRIMARY KEY (bucket_s, t, grouping, grp)
    )
    """,
)
# What one ledger row adds to each of SUMS.
ROW_VALUES = (
    "1",
    "CASE WHEN billed THEN 1 ELSE 0 END",
    "CASE WHEN billed THEN price_micro_usd ELSE 0 END",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
)


def hour_sql(dialect: Dialect) -> str:
    if dialect == "sqlite":
        return f"CAST(started_at / {HOUR_S} AS INTEGER) * {HOUR_S}"
    return f"CAST(floor(started_at / {HOUR_S}) AS BIGINT) * {HOUR_S}"


def _mark(dialect: Dialect, index: int) -> str:
    return "?" if dialect == "sqlite" else f"${index}"


def roll_sql(dialect: Dialect) -> str:
    """Sum the ledger rows of [$1, $2) into the hourly table."""
    sums = ", ".join(f"SUM({value})" for value in ROW_VALUES)
    return (
        f"INSERT INTO {HOURLY} (hour, model, key_id, backend, {', '.join(SUMS)}) "  # noqa: S608
        f"SELECT {hour_sql(dialect)}, COALESCE(model, ''), COALESCE(key_id, ''), "
        f"COALESCE(backend, ''), {sums} FROM {TABLE} "
        f"WHERE started_at >= {_mark(dialect, 1)} AND started_at < {_mark(dialect, 2)} "
        "GROUP BY 1, 2, 3, 4"
    )


def counts_sql(dialect: Dialect) -> str:
    """Ledger rows per hour in [$1, $2): an index-only read of the time index."""
    return (
        f"SELECT {hour_sql(dialect)}, COUNT(*) FROM {TABLE} "  # noqa: S608 constants only
        f"WHERE started_at >= {_mark(dialect, 1)} AND started_at < {_mark(dialect, 2)} GROUP BY 1"
    )


class RollupPlan:
    """What a refresh does, decided from the rollup's state and the ledger's counts."""

    def __init__(self, now: float, settle_s: float, recheck_s: float) -> None:
        self.settled_until = math.floor((now - settle_s) / HOUR_S) * HOUR_S
        self.recheck_s = recheck_s

    def new_span(self, rolled_until: int | None, first_row: float | None) -> tuple[int, int] | None:
        """The hours to roll for the first time, [from, to); None when there are none."""
        start = rolled_until
        if start is None:
            if first_row is None:
                return None
            start = math.floor(first_row / HOUR_S) * HOUR_S
        return (start, self.settled_until) if start < self.settled_until else None

    def recheck_span(self, first_hour: int, rolled_until: int) -> tuple[int, int]:
        return max(first_hour, rolled_until - int(self.recheck_s)), rolled_until


def chunks(span: tuple[int, int] | None, size_s: int) -> Iterator[tuple[int, int]]:
    """[from, to) in pieces of at most `size_s`, oldest first."""
    if span is None:
        return
    for start in range(span[0], span[1], size_s):
        yield start, min(start + size_s, span[1])


def stale_hours(rolled: dict[int, int], counted: dict[int, int]) -> list[int]:
    """Rolled hours whose ledger row count changed since."""
    return sorted(h for h in rolled if counted.get(h, 0) != rolled[h])


class UsageRollup:
    """Keeps the rollup of one ledger store; `run` executes a function of a dialect's connection
    (the store's thread for SQLite, a pooled connection for PostgreSQL)."""

    def __init__(
        self,
        *,
        settle_s: float = SETTLE_S,
        recheck_s: float = RECHECK_S,
        refresh_s: float = REFRESH_S,
        chunk_s: int = CHUNK_S,
        budget_s: float = BUDGET_S,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """A refresh rolls new hours `chunk_s` at a time until `budget_s` is spent (at least
        one chunk), so a ledger with a long history is rolled over several refreshes, none of
        which holds the database long."""
        self._chunk_s = chunk_s
        self._budget_s = budget_s
        self._settle_s = settle_s
        self._recheck_s = recheck_s
        self._refresh_s = refresh_s
        self._clock = clock
        self._monotonic = monotonic
        self._migrated = False
        self._refreshed_at: float | None = None
        self.rolled_until: int | None = None

    def due(self) -> bool:
        at = self._refreshed_at
        return at is None or self._monotonic() - at >= self._refresh_s

    # ---- SQLite --------------------------------------------------------------------------

    def refresh_sqlite(self, conn: sqlite3.Connection) -> int | None:
        """Roll what has settled and re-roll what changed; the new `rolled_until`."""
        if not self._migrated:
            migrate_sqlite(conn, COMPONENT, _STEPS)
            self._migrated = True
        plan = RollupPlan(self._clock(), self._settle_s, self._recheck_s)
        with transaction(conn):
            rolled_until, first_hour = conn.execute(
                f"SELECT MAX(hour) + {HOUR_S}, MIN(hour) FROM {HOURS}"  # noqa: S608 constant
            ).fetchone()
            first_row = None
            if rolled_until is None:
                first_row = conn.execute(f"SELECT MIN(started_at) FROM {TABLE}").fetchone()[0]  # noqa: S608
            deadline = self._monotonic() + self._budget_s
            for start, end in chunks(plan.new_span(rolled_until, first_row), self._chunk_s):
                self._roll_sqlite(conn, start, end)
                self._roll_latency_sqlite(conn, HOUR_S, start, end)
                days = complete_days(start, end, end)
                if days is not None:
                    self._roll_latency_sqlite(conn, DAY_S, *days)
                rolled_until = end
                first_hour = start if first_hour is None else first_hour
                if self._monotonic() >= deadline:
                    break
            if rolled_until is not None and first_hour is not None:
                low, high = plan.recheck_span(first_hour, rolled_until)
                rolled = dict(
                    conn.execute(
                        f"SELECT hour, ledger_rows FROM {HOURS} WHERE hour >= ? AND hour < ?",  # noqa: S608
                        (low, high),
                    ).fetchall()
                )
                counted = dict(conn.execute(counts_sql("sqlite"), (low, high)).fetchall())
                for hour in stale_hours(rolled, counted):
                    conn.execute(f"DELETE FROM {HOURLY} WHERE hour = ?", (hour,))  # noqa: S608
                    conn.execute(f"DELETE FROM {HOURS} WHERE hour = ?", (hour,))  # noqa: S608
                    self._roll_sqlite(conn, hour, hour + HOUR_S)
                    self._roll_latency_sqlite(conn, HOUR_S, hour, hour + HOUR_S)
                    days = complete_days(hour, hour + HOUR_S, rolled_until)
                    if days is not None:
                        self._roll_latency_sqlite(conn, DAY_S, *days)
        until = None if rolled_until is None else int(rolled_until)
        self._done(until)
        return until

    def _roll_latency_sqlite(
        self, conn: sqlite3.Connection, bucket_s: int, start: int, end: int
    ) -> None:
        conn.execute(latency_delete_sql("sqlite"), (bucket_s, start, end))
        for grouping in GROUPINGS:
            queries = latency_sql("sqlite", UsageFilter(start=start, end=end), bucket_s, grouping)
            series = sqlite_latency([conn.execute(sql, p).fetchall() for sql, p in queries])
            conn.executemany(latency_insert_sql("sqlite"), latency_rows(bucket_s, grouping, series))

    def _roll_sqlite(self, conn: sqlite3.Connection, start: int, end: int) -> None:
        conn.execute(roll_sql("sqlite"), (start, end))
        counts = dict(conn.execute(counts_sql("sqlite"), (start, end)).fetchall())
        conn.executemany(
            f"INSERT INTO {HOURS} (hour, ledger_rows) VALUES (?, ?)",  # noqa: S608 constant
            [(hour, counts.get(hour, 0)) for hour in range(start, end, HOUR_S)],
        )

    # ---- PostgreSQL ----------------------------------------------------------------------

    async def refresh_postgres(self, pool: Any) -> int | None:
        async with pool.acquire() as conn:
            if not self._migrated:
                await migrate_postgres(conn, COMPONENT, _STEPS)
                self._migrated = True
            plan = RollupPlan(self._clock(), self._settle_s, self._recheck_s)
            async with conn.transaction():
                # One edge rolls at a time; the others read the rollup as it stands.
                if await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", HOURLY):
                    await self._refresh_postgres(conn, plan)
                record = await conn.fetchrow(f"SELECT MAX(hour) + {HOUR_S} FROM {HOURS}")  # noqa: S608
        rolled_until = None if record[0] is None else int(record[0])
        self._done(rolled_until)
        return rolled_until

    async def _refresh_postgres(self, conn: Any, plan: RollupPlan) -> None:
        record = await conn.fetchrow(f"SELECT MAX(hour) + {HOUR_S}, MIN(hour) FROM {HOURS}")  # noqa: S608
        rolled_until = None if record[0] is None else int(record[0])
        first_hour = None if record[1] is None else int(record[1])
        first_row = None
        if rolled_until is None:
            first_row = await conn.fetchval(f"SELECT MIN(started_at) FROM {TABLE}")  # noqa: S608
        deadline = self._monotonic() + self._budget_s
        for start, end in chunks(plan.new_span(rolled_until, first_row), self._chunk_s):
            await self._roll_postgres(conn, start, end)
            await self._roll_latency_postgres(conn, HOUR_S, start, end)
            days = complete_days(start, end, end)
            if days is not None:
                await self._roll_latency_postgres(conn, DAY_S, *days)
            rolled_until = end
            first_hour = start if first_hour is None else first_hour
            if self._monotonic() >= deadline:
                break
        if rolled_until is None or first_hour is None:
            return
        low, high = plan.recheck_span(first_hour, rolled_until)
        rolled = {
            int(r[0]): int(r[1])
            for r in await conn.fetch(
                f"SELECT hour, ledger_rows FROM {HOURS} WHERE hour >= $1 AND hour < $2",  # noqa: S608
                low,
                high,
            )
        }
        counted = {
            int(r[0]): int(r[1]) for r in await conn.fetch(counts_sql("postgresql"), low, high)
        }
        for hour in stale_hours(rolled, counted):
            await conn.execute(f"DELETE FROM {HOURLY} WHERE hour = $1", hour)  # noqa: S608
            await conn.execute(f"DELETE FROM {HOURS} WHERE hour = $1", hour)  # noqa: S608
            await self._roll_postgres(conn, hour, hour + HOUR_S)
            await self._roll_latency_postgres(conn, HOUR_S, hour, hour + HOUR_S)
            days = complete_days(hour, hour + HOUR_S, rolled_until)
            if days is not None:
                await self._roll_latency_postgres(conn, DAY_S, *days)

    async def _roll_latency_postgres(self, conn: Any, bucket_s: int, start: int, end: int) -> None:
        await conn.execute(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
        await conn.execute(latency_delete_sql("postgresql"), bucket_s, start, end)
        where = UsageFilter(start=float(start), end=float(end))
        for grouping in GROUPINGS:
            queries = latency_sql("postgresql", where, bucket_s, grouping)
            sql, params = queries[0]
            series = pg_latency(await conn.fetch(sql, *params))
            await conn.executemany(
                latency_insert_sql("postgresql"), latency_rows(bucket_s, grouping, series)
            )

    async def _roll_postgres(self, conn: Any, start: int, end: int) -> None:
        await conn.execute(roll_sql("postgresql"), float(start), float(end))
        counts = {
            int(r[0]): int(r[1])
            for r in await conn.fetch(counts_sql("postgresql"), float(start), float(end))
        }
        await conn.executemany(
            f"INSERT INTO {HOURS} (hour, ledger_rows) VALUES ($1, $2)",  # noqa: S608 constant
            [(hour, counts.get(hour, 0)) for hour in range(start, end, HOUR_S)],
        )

    def _done(self, rolled_until: int | None) -> None:
        self.rolled_until = rolled_until
        self._refreshed_at = self._monotonic()


def complete_days(start: int, end: int, rolled_until: int) -> tuple[int, int] | None:
    """The days that meet [start, end) and have settled whole by `rolled_until`, [from, to)."""
    first = start // DAY_S * DAY_S
    last = min(math.ceil(end / DAY_S) * DAY_S, rolled_until // DAY_S * DAY_S)
    return (first, last) if first < last else None


def rolled_span(
    start: float, end: float, rolled_until: int | None, bucket_s: int = HOUR_S
) -> tuple[int, int] | None:
    """The whole buckets of [start, end) that the rollup holds; None when there are none."""
    if rolled_until is None:
        return None
    first = math.ceil(start / bucket_s) * bucket_s
    last = min(math.floor(end / bucket_s) * bucket_s, rolled_until // bucket_s * bucket_s)
    return (first, last) if first < last else None


def latency_delete_sql(dialect: Dialect) -> str:
    marks = [_mark(dialect, i) for i in (1, 2, 3)]
    return (
        f"DELETE FROM {LATENCY} WHERE bucket_s = {marks[0]} "  # noqa: S608 constants only
        f"AND t >= {marks[1]} AND t < {marks[2]}"
    )


def latency_insert_sql(dialect: Dialect) -> str:
    columns = ("bucket_s", "t", "grouping", "grp", "requests", *FIGURES)
    marks = ", ".join(_mark(dialect, i) for i in range(1, len(columns) + 1))
    return f"INSERT INTO {LATENCY} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


def latency_select_sql(dialect: Dialect) -> str:
    """The rolled buckets of one size and grouping in [$3, $4): (t, grp, requests, figures)."""
    marks = [_mark(dialect, i) for i in (1, 2, 3, 4)]
    return (
        f"SELECT t, grp, requests, {', '.join(FIGURES)} FROM {LATENCY} "  # noqa: S608
        f"WHERE bucket_s = {marks[0]} AND grouping = {marks[1]} "
        f"AND t >= {marks[2]} AND t < {marks[3]}"
    )


def latency_rows(
    bucket_s: int, grouping: str, series: list[LatencySeries]
) -> list[tuple[object, ...]]:
    return [
        (bucket_s, p.t, grouping, s.group or "", p.requests, *(getattr(p, f) for f in FIGURES))
        for s in series
        for p in s.points
    ]


def source_sql(
    dialect: Dialect,
    *,
    start: float,
    end: float,
    span: tuple[int, int] | None,
    filters: Sequence[tuple[str, object]],
) -> tuple[str, list[object]]:
    """A subquery of (ts, model, key_id, backend, sums...) rows covering [start, end) once: the
    rollup's hours of `span`, the ledger's rows for the rest."""
    params: list[object] = []

    def mark(value: object) -> str:
        params.append(value)
        return _mark(dialect, len(params))

    def matches() -> str:
        return "".join(f" AND {column} = {mark(value)}" for column, value in filters)

    columns = f"model, key_id, backend, {', '.join(SUMS)}"
    values = ", ".join(f"{value} AS {name}" for value, name in zip(ROW_VALUES, SUMS, strict=True))
    raw = (
        "SELECT started_at AS ts, COALESCE(model, '') AS model, COALESCE(key_id, '') AS key_id, "  # noqa: S608
        f"COALESCE(backend, '') AS backend, {values} FROM {TABLE} WHERE "
    )
    if span is None:
        return raw + f"started_at >= {mark(start)} AND started_at < {mark(end)}{matches()}", params
    rolled = (
        f"SELECT hour AS ts, {columns} FROM {HOURLY} "  # noqa: S608 constants only
        f"WHERE hour >= {mark(span[0])} AND hour < {mark(span[1])}{matches()}"
    )
    edges = (
        f"((started_at >= {mark(start)} AND started_at < {mark(float(span[0]))}) OR "
        f"(started_at >= {mark(float(span[1]))} AND started_at < {mark(end)})){matches()}"
    )
    return f"{rolled} UNION ALL {raw}{edges}", params
