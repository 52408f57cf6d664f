"""Ledger stores: SQLite (WAL, one dedicated thread) and PostgreSQL (asyncpg pool).

Inserts are idempotent on the request id (`ON CONFLICT DO NOTHING`), so a re-flush after a
failure or a restart never duplicates a row.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from proxy.ledger import schema
from proxy.ledger.database import (
    StoreUrl,
    connect_sqlite,
    migrate_postgres,
    migrate_sqlite,
    parse_store_url,
    transaction,
)
from proxy.ledger.row import FIELDS, LedgerRow
from proxy.ledger.usage import (
    GroupBy,
    LedgerStore,
    UsageBucket,
    UsageFilter,
    admitted_sql,
    bucket,
    insert_sql,
    row_from_record,
    row_params,
    rows_sql,
    usage_sql,
)

T = TypeVar("T")

_PG_ROWS_PER_STATEMENT = 1000  # 21 parameters a row, under PostgreSQL's 32767 per statement


def _pg_insert_many(count: int) -> str:
    width = len(FIELDS)
    groups = ", ".join(
        "(" + ", ".join(f"${row * width + i}" for i in range(1, width + 1)) + ")"
        for row in range(count)
    )
    columns = ", ".join(FIELDS)
    return (
        f"INSERT INTO warmgate_ledger ({columns}) VALUES {groups} "  # noqa: S608 placeholders
        "ON CONFLICT (request_id) DO NOTHING"
    )


def open_ledger_store(url: str) -> LedgerStore:
    parsed = parse_store_url(url)
    if parsed.dialect == "sqlite":
        return SqliteLedgerStore(parsed)
    return PostgresLedgerStore(parsed)


class SqliteLedgerStore:
    def __init__(self, url: StoreUrl) -> None:
        self._path = url.target
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._insert = insert_sql("sqlite")

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warmgate-ledger")
        self._conn = await self._run(lambda: connect_sqlite(self._path))
        conn = self._conn
        await self._run(lambda: migrate_sqlite(conn, "ledger", schema.SQLITE_STEPS))

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._run(conn.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("ledger store is not started")
        return self._conn

    async def insert(self, rows: list[LedgerRow]) -> int:
        params = [row_params(row) for row in rows]

        def run() -> int:
            conn = self._db()
            before = conn.total_changes
            with transaction(conn):
                conn.executemany(self._insert, params)
            return conn.total_changes - before

        return await self._run(run)

    async def get(self, request_id: str) -> LedgerRow | None:
        sql, _ = rows_sql("sqlite", UsageFilter())
        sql = sql.replace(" ORDER BY started_at", " WHERE request_id = ?")
        record = await self._run(lambda: self._db().execute(sql, (request_id,)).fetchone())
        return None if record is None else row_from_record(tuple(record))

    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]:
        sql, params = usage_sql("sqlite", where, group_by)
        records = await self._run(lambda: self._db().execute(sql, params).fetchall())
        return [bucket(tuple(record)) for record in records]

    async def rows(self, where: UsageFilter) -> list[LedgerRow]:
        sql, params = rows_sql("sqlite", where)
        records = await self._run(lambda: self._db().execute(sql, params).fetchall())
        return [row_from_record(tuple(record)) for record in records]

    async def admitted_since(self, start: float) -> dict[str, int]:
        sql = admitted_sql("sqlite")
        records = await self._run(lambda: self._db().execute(sql, (start,)).fetchall())
        return {str(key_id): int(count) for key_id, count in records}


class PostgresLedgerStore:
    def __init__(self, url: StoreUrl) -> None:
        self._dsn = url.target
        self._pool: Any = None
        self._statements: dict[int, str] = {}  # rows per statement -> its INSERT

    async def start(self) -> None:
        import asyncpg  # noqa: PLC0415 only fleets with PostgreSQL load the driver

        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
        async with self._pool.acquire() as conn:
            await migrate_postgres(conn, "ledger", schema.POSTGRES_STEPS)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _db(self) -> Any:
        if self._pool is None:
            raise RuntimeError("ledger store is not started")
        return self._pool

    async def insert(self, rows: list[LedgerRow]) -> int:
        inserted = 0
        async with self._db().acquire() as conn, conn.transaction():
            for first in range(0, len(rows), _PG_ROWS_PER_STATEMENT):
                chunk = rows[first : first + _PG_ROWS_PER_STATEMENT]
                params = [value for row in chunk for value in row_params(row)]
                sql = self._statements.get(len(chunk))
                if sql is None:
                    sql = self._statements[len(chunk)] = _pg_insert_many(len(chunk))
                status = await conn.execute(sql, *params)
                inserted += int(status.rsplit(" ", 1)[-1])  # "INSERT 0 <n>"
        return inserted

    async def get(self, request_id: str) -> LedgerRow | None:
        sql, _ = rows_sql("postgresql", UsageFilter())
        sql = sql.replace(" ORDER BY started_at", " WHERE request_id = $1")
        record = await self._db().fetchrow(sql, request_id)
        return None if record is None else row_from_record(tuple(record))

    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]:
        sql, params = usage_sql("postgresql", where, group_by)
        records = await self._db().fetch(sql, *params)
        return [bucket(tuple(record)) for record in records]

    async def rows(self, where: UsageFilter) -> list[LedgerRow]:
        sql, params = rows_sql("postgresql", where)
        records = await self._db().fetch(sql, *params)
        return [row_from_record(tuple(record)) for record in records]

    async def admitted_since(self, start: float) -> dict[str, int]:
        records = await self._db().fetch(admitted_sql("postgresql"), start)
        return {str(record[0]): int(record[1]) for record in records}
