"""Where the ledger and the key store live: a SQLite file (one edge) or PostgreSQL (a fleet).

Both share one URL (`[ledger] url`): `sqlite:///path/to/warmgate.db` or `postgresql://...`.
SQLite runs in WAL mode on one dedicated thread per store, so the event loop never blocks on disk;
PostgreSQL goes through an asyncpg pool. Schema changes are numbered steps per component, applied
once and recorded in `warmgate_schema`. `SqliteDatabase` and `PostgresDatabase` open and migrate
one component's store; the key stores, the ledger stores and the response bindings are built on
them. Every call after `start()` is bounded (`proxy.store.outage`): a read by `read_timeout_s`, a
write by `write_timeout_s`; past it, or when the database is away, the call raises
`StoreUnavailable` (503) instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from warmgate.proxy.store.outage import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    DEFAULT_WRITE_TIMEOUT_S,
    Deadlines,
)

Dialect = Literal["sqlite", "postgresql"]
T = TypeVar("T")


class StoreMissing(Exception):  # noqa: N818  # named for what happened, like the HTTP errors
    """A store opened for reading only does not exist (no file, no database, no tables)."""


class StoreUrl(msgspec.Struct, frozen=True):
    dialect: Dialect
    target: str  # SQLite: the file path; PostgreSQL: the asyncpg DSN

    def __repr__(self) -> str:
        # A PostgreSQL DSN may carry a password: never show it.
        shown = self.target if self.dialect == "sqlite" else "postgresql://..."
        return f"StoreUrl({self.dialect}, {shown})"


def parse_store_url(url: str) -> StoreUrl:
    if url.startswith("sqlite:///"):
        return StoreUrl("sqlite", url[len("sqlite:///") :] if url != "sqlite:///" else "")
    if url.startswith("sqlite://"):
        return StoreUrl("sqlite", url[len("sqlite://") :])
    if url.startswith(("postgresql://", "postgres://")):
        return StoreUrl("postgresql", url)
    raise ValueError("store url must start with sqlite:/// or postgresql://")


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{path}"


_SCHEMA_TABLE = (  # the same statement on both databases
    "CREATE TABLE IF NOT EXISTS warmgate_schema ("
    "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


def connect_sqlite(path: str) -> sqlite3.Connection:
    """A connection in WAL mode that waits for other writers instead of failing."""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path or ":memory:", timeout=30.0, check_same_thread=False, isolation_level=None
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate_sqlite(conn: sqlite3.Connection, component: str, steps: Sequence[str]) -> int:
    """Apply the steps of `component` not yet applied, in one transaction; the new version."""
    with transaction(conn):
        conn.execute(_SCHEMA_TABLE)
        row = conn.execute(
            "SELECT version FROM warmgate_schema WHERE component = ?", (component,)
        ).fetchone()
        version = int(row[0]) if row else 0
        for step in steps[version:]:
            for statement in _split(step):
                conn.execute(statement)
        conn.execute(
            "INSERT INTO warmgate_schema (component, version) VALUES (?, ?) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, len(steps)),
        )
    return len(steps)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection; ROLLBACK on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


async def migrate_postgres(conn: Any, component: str, steps: Sequence[str]) -> int:
    """The same for PostgreSQL; an advisory lock serialises edges starting together."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('warmgate_schema'))")
        await conn.execute(_SCHEMA_TABLE)
        version = await conn.fetchval(
            "SELECT version FROM warmgate_schema WHERE component = $1", component
        )
        for step in steps[int(version or 0) :]:
            for statement in _split(step):
                await conn.execute(statement)
        await conn.execute(
            "INSERT INTO warmgate_schema (component, version) VALUES ($1, $2) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            component,
            len(steps),
        )
    return len(steps)


def is_file(path: str) -> bool:
    return Path(path).is_file()


def sqlite_version(conn: sqlite3.Connection, component: str) -> int:
    """The schema version of `component` in this file; 0 when it has none."""
    try:
        row = conn.execute(
            "SELECT version FROM warmgate_schema WHERE component = ?", (component,)
        ).fetchone()
    except sqlite3.OperationalError:  # no warmgate_schema table: not a Warmgate store
        return 0
    return int(row[0]) if row else 0


async def postgres_version(conn: Any, component: str) -> int:
    """The same for PostgreSQL."""
    if await conn.fetchval("SELECT to_regclass('warmgate_schema')") is None:
        return 0
    version = await conn.fetchval(
        "SELECT version FROM warmgate_schema WHERE component = $1", component
    )
    return int(version or 0)


def _split(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


class SqliteDatabase:
    """One component's SQLite file: opened in WAL mode and migrated by `start()`, then used from
    one dedicated thread, so the event loop never blocks on disk."""

    def __init__(
        self,
        url: StoreUrl,
        component: str,
        steps: Sequence[str],
        *,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
    ) -> None:
        self._path = url.target
        self._component = component
        self._steps = steps
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self._deadlines = Deadlines()
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self, *, create: bool = True) -> None:
        """Open and migrate; with `create=False` (a command that only reads) the store must
        already exist: StoreMissing rather than an empty new file."""
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"warmgate-{self._component}"
        )
        if not create and not await self._call(lambda: bool(self._path) and is_file(self._path)):
            raise StoreMissing(f"no {self._component} store at {self._path or ':memory:'}")
        self._conn = await self._call(lambda: connect_sqlite(self._path))
        if not create and not await self._call(
            lambda: sqlite_version(self._connection(), self._component)
        ):
            raise StoreMissing(f"{self._path} holds no {self._component} store")
        await self._call(lambda: migrate_sqlite(self._connection(), self._component, self._steps))

    async def close(self) -> None:
        await self._deadlines.close()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._call(conn.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        """`fn(connection)` on the database's thread, within the read (or write) timeout."""
        conn = self._connection()
        timeout_s = self.write_timeout_s if write else self.read_timeout_s
        return await self._deadlines.run(self._call(lambda: fn(conn)), timeout_s)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"{self._component} store is not started")
        return self._conn

    def _call(self, fn: Callable[[], T]) -> Awaitable[T]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)


class PostgresDatabase:
    """One component's PostgreSQL tables: an asyncpg pool opened, and the schema migrated, by
    `start()`. The driver is imported only here, so only fleets with PostgreSQL load it."""

    def __init__(
        self,
        url: StoreUrl,
        component: str,
        steps: Sequence[str],
        *,
        max_connections: int,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        """`server_settings`: PostgreSQL settings for this store's connections."""
        self._dsn = url.target
        self._server_settings = server_settings
        self._component = component
        self._steps = steps
        self._max_connections = max_connections
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._deadlines = Deadlines()
        self._pool: Any = None

    async def start(self, *, create: bool = True) -> None:
        """Connect and migrate; with `create=False` (a command that only reads) the database
        must already hold this component's tables: StoreMissing rather than new empty ones."""
        import asyncpg  # noqa: PLC0415 only fleets with PostgreSQL load the driver

        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._max_connections,
            timeout=self._connect_timeout_s,
            server_settings=self._server_settings,
        )
        async with self._pool.acquire() as conn:
            if not create and not await postgres_version(conn, self._component):
                await self.close()
                raise StoreMissing(f"the database holds no {self._component} store")
            await migrate_postgres(conn, self._component, self._steps)

    async def close(self) -> None:
        await self._deadlines.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=self._connect_timeout_s)
            except TimeoutError:  # connections held by a partition: drop them
                pool.terminate()

    @property
    def pool(self) -> Any:
        """The asyncpg pool (`fetch`, `execute`, `acquire`, ...)."""
        if self._pool is None:
            raise RuntimeError(f"{self._component} store is not started")
        return self._pool

    async def fetch(self, sql: str, *args: object) -> list[Any]:
        records: list[Any] = await self._deadlines.run(
            self.pool.fetch(sql, *args), self.read_timeout_s
        )
        return records

    async def fetchrow(self, sql: str, *args: object) -> Any:
        return await self._deadlines.run(self.pool.fetchrow(sql, *args), self.read_timeout_s)

    async def execute(self, sql: str, *args: object) -> str:
        status: str = await self._deadlines.run(self.pool.execute(sql, *args), self.write_timeout_s)
        return status

    async def transact(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """`fn(connection)` inside one transaction, within the write timeout."""

        async def run() -> T:
            async with self.pool.acquire() as conn, conn.transaction():
                return await fn(conn)

        return await self._deadlines.run(run(), self.write_timeout_s)
