"""Ledger stores: SQLite (WAL, one dedicated thread) and PostgreSQL (asyncpg pool).

Inserts are idempotent on the request id (`ON CONFLICT DO NOTHING`), so a re-flush after a
failure or a restart never duplicates a row. An insert the database refuses for the values it
holds raises `RowsRejected` (the writer then bisects the batch); one that fails because the
database is away raises `StoreUnavailable` (the writer keeps the rows and retries).
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from typing import Any

from warmgate.proxy.ledger import schema
from warmgate.proxy.ledger.row import FIELDS, LedgerRow
from warmgate.proxy.ledger.usage import (
    GroupBy,
    LedgerStore,
    RowsRejected,
    UsageBucket,
    UsageFilter,
    admitted_sql,
    bucket,
    row_from_record,
    rows_params,
    rows_sql,
    usage_sql,
)
from warmgate.proxy.store.database import (
    PostgresDatabase,
    SqliteDatabase,
    StoreUrl,
    parse_store_url,
    transaction,
)
from warmgate.proxy.store.outage import DEFAULT_READ_TIMEOUT_S, DEFAULT_WRITE_TIMEOUT_S

_PG_ROWS_PER_STATEMENT = 1000  # 21 parameters a row, under PostgreSQL's 32767 per statement
# Under SQLite's default 32766 variables per statement (3.32+) too. One multi-row INSERT per
# chunk, not executemany: executemany binds each row holding the GIL and releases it around each
# row's step, so a 500-row flush took the GIL back from the event loop ~500 times, each a forced
# switch (up to the 5 ms switch interval) that stalled the loop: the ledger's on/off gap in
# requests/s. A chunk binds its rows in one go and releases the GIL once, for one step. Chunks
# have power-of-two sizes up to 256 (5,376 variables), so a handful of statements is ever
# prepared, whatever the batch sizes.
_SQLITE_MAX_CHUNK = 256
# sqlite3 binds an exact int as it is, but looks a bool up in its adapters first (a dictionary
# miss and two attribute lookups per value, a tenth of a row's insert): the flags go in as ints.
_SQLITE_FLAGS = tuple(FIELDS.index(name) for name in ("stream", "billed", "cancelled"))


def _sqlite_params(rows: list[LedgerRow]) -> list[Any]:
    params: list[Any] = rows_params(rows)
    width = len(FIELDS)
    for index in _SQLITE_FLAGS:
        params[index::width] = list(map(int, params[index::width]))
    return params


def _sqlite_chunk_sizes(count: int) -> list[int]:
    sizes = [_SQLITE_MAX_CHUNK] * (count // _SQLITE_MAX_CHUNK)
    rest = count % _SQLITE_MAX_CHUNK
    size = _SQLITE_MAX_CHUNK
    while rest:
        size //= 2
        if rest >= size:
            sizes.append(size)
            rest -= size
    return sizes


def _pg_insert_many(count: int) -> str:
    width = len(FIELDS)
    groups = ", ".join(
        "(" + ", ".join(f"${row * width + i}" for i in range(1, width + 1)) + ")"
        for row in range(count)
    )
    return _insert_values(groups)


def _sqlite_insert_many(count: int) -> str:
    group = "(" + ", ".join("?" * len(FIELDS)) + ")"
    return _insert_values(", ".join([group] * count))


def _insert_values(groups: str) -> str:
    columns = ", ".join(FIELDS)
    return (
        f"INSERT INTO warmgate_ledger ({columns}) VALUES {groups} "  # noqa: S608 placeholders
        "ON CONFLICT (request_id) DO NOTHING"
    )


# What SQLite's driver raises for a value it cannot bind (an integer past 64 bits, a lone
# surrogate) or a row a constraint or trigger refuses.
_SQLITE_REJECTIONS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    OverflowError,
    UnicodeEncodeError,
)


def _postgres_rejections() -> tuple[type[Exception], ...]:
    """PostgreSQL's classes for a refused value: data exceptions (class 22, also what asyncpg
    raises for an argument it cannot encode), integrity constraints (23, triggers included),
    program limits (54: an index row too large)."""
    errors = sys.modules["asyncpg"].exceptions
    return (
        errors.DataError,
        errors.IntegrityConstraintViolationError,
        errors.ProgramLimitExceededError,
    )


@contextlib.contextmanager
def _rejections(kinds: tuple[type[Exception], ...]) -> Iterator[None]:
    try:
        yield
    except kinds as exc:
        raise RowsRejected(type(exc).__name__) from exc


def open_ledger_store(
    url: str,
    *,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
) -> LedgerStore:
    parsed = parse_store_url(url)
    if parsed.dialect == "sqlite":
        return SqliteLedgerStore(
            parsed, read_timeout_s=read_timeout_s, write_timeout_s=write_timeout_s
        )
    return PostgresLedgerStore(
        parsed, read_timeout_s=read_timeout_s, write_timeout_s=write_timeout_s
    )


class SqliteLedgerStore(SqliteDatabase):
    def __init__(
        self,
        url: StoreUrl,
        *,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
    ) -> None:
        super().__init__(
            url,
            "ledger",
            schema.SQLITE_STEPS,
            read_timeout_s=read_timeout_s,
            write_timeout_s=write_timeout_s,
        )
        self._statements: dict[int, str] = {}  # rows per statement (a power of two) -> INSERT

    async def insert(self, rows: list[LedgerRow]) -> int:
        chunks: list[tuple[str, list[object]]] = []
        first = 0
        for size in _sqlite_chunk_sizes(len(rows)):
            chunk = rows[first : first + size]
            first += size
            sql = self._statements.get(size)
            if sql is None:
                sql = self._statements[size] = _sqlite_insert_many(size)
            chunks.append((sql, _sqlite_params(chunk)))

        def run(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            with transaction(conn):
                for sql, params in chunks:
                    conn.execute(sql, params)
            return conn.total_changes - before

        with _rejections(_SQLITE_REJECTIONS):
            return await self.run(run, write=True)

    async def get(self, request_id: str) -> LedgerRow | None:
        sql, _ = rows_sql("sqlite", UsageFilter())
        sql = sql.replace(" ORDER BY started_at", " WHERE request_id = ?")
        record = await self.run(lambda db: db.execute(sql, (request_id,)).fetchone())
        return None if record is None else row_from_record(tuple(record))

    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]:
        sql, params = usage_sql("sqlite", where, group_by)
        records = await self.run(lambda db: db.execute(sql, params).fetchall())
        return [bucket(tuple(record)) for record in records]

    async def rows(self, where: UsageFilter) -> list[LedgerRow]:
        sql, params = rows_sql("sqlite", where)
        records = await self.run(lambda db: db.execute(sql, params).fetchall())
        return [row_from_record(tuple(record)) for record in records]

    async def admitted_since(self, start: float) -> dict[str, int]:
        sql = admitted_sql("sqlite")
        records = await self.run(lambda db: db.execute(sql, (start,)).fetchall())
        return {str(key_id): int(count) for key_id, count in records}


class PostgresLedgerStore(PostgresDatabase):
    def __init__(
        self,
        url: StoreUrl,
        *,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
    ) -> None:
        super().__init__(
            url,
            "ledger",
            schema.POSTGRES_STEPS,
            max_connections=4,
            read_timeout_s=read_timeout_s,
            write_timeout_s=write_timeout_s,
        )
        self._statements: dict[int, str] = {}  # rows per statement -> its INSERT

    async def insert(self, rows: list[LedgerRow]) -> int:
        async def run(conn: Any) -> int:
            inserted = 0
            for first in range(0, len(rows), _PG_ROWS_PER_STATEMENT):
                chunk = rows[first : first + _PG_ROWS_PER_STATEMENT]
                params = rows_params(chunk)
                sql = self._statements.get(len(chunk))
                if sql is None:
                    sql = self._statements[len(chunk)] = _pg_insert_many(len(chunk))
                status = await conn.execute(sql, *params)
                inserted += int(status.rsplit(" ", 1)[-1])  # "INSERT 0 <n>"
            return inserted

        with _rejections(_postgres_rejections()):
            return await self.transact(run)

    async def get(self, request_id: str) -> LedgerRow | None:
        sql, _ = rows_sql("postgresql", UsageFilter())
        sql = sql.replace(" ORDER BY started_at", " WHERE request_id = $1")
        record = await self.fetchrow(sql, request_id)
        return None if record is None else row_from_record(tuple(record))

    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]:
        sql, params = usage_sql("postgresql", where, group_by)
        records = await self.fetch(sql, *params)
        return [bucket(tuple(record)) for record in records]

    async def rows(self, where: UsageFilter) -> list[LedgerRow]:
        sql, params = rows_sql("postgresql", where)
        records = await self.fetch(sql, *params)
        return [row_from_record(tuple(record)) for record in records]

    async def admitted_since(self, start: float) -> dict[str, int]:
        records = await self.fetch(admitted_sql("postgresql"), start)
        return {str(record[0]): int(record[1]) for record in records}
