"""Where the ledger and the key store live: a SQLite file (one edge) or PostgreSQL (a fleet).

Both share one URL (`[ledger] url`): `sqlite:///path/to/warmgate.db` or `postgresql://...`.
SQLite runs in WAL mode on one dedicated thread per store, so the event loop never blocks on disk;
PostgreSQL goes through an asyncpg pool. Schema changes are numbered steps per component, applied
once and recorded in `warmgate_schema`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

Dialect = Literal["sqlite", "postgresql"]


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


def _split(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
