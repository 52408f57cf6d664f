"""Durable key records in SQLite or PostgreSQL: the source the key ring is refreshed from.

A record holds the key's public fields and the SHA-256 of its secret, never the secret itself.
Every call is bounded by the store's timeouts (`proxy.store.database`): a database that is down
answers `StoreUnavailable` (503) to the admin API, and the refresher keeps its last snapshot.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from warmgate.proxy.keys.key import Key, QuotaPeriod
from warmgate.proxy.store.database import (
    PostgresDatabase,
    SqliteDatabase,
    StoreUrl,
    parse_store_url,
    transaction,
)
from warmgate.proxy.store.outage import DEFAULT_READ_TIMEOUT_S, DEFAULT_WRITE_TIMEOUT_S

_COLUMNS = (
    "id, name, allowed_models, rpm, max_concurrency, quota, quota_period, expires_at, revoked, "
    "created_at, secret_hash"
)
_SQLITE_STEPS = (
    """
    CREATE TABLE warmgate_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        allowed_models TEXT,
        rpm INTEGER,
        max_concurrency INTEGER,
        quota INTEGER,
        quota_period TEXT,
        expires_at REAL,
        revoked INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
)
_POSTGRES_STEPS = (
    """
    CREATE TABLE warmgate_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        allowed_models TEXT,
        rpm INTEGER,
        max_concurrency INTEGER,
        quota BIGINT,
        quota_period TEXT,
        expires_at DOUBLE PRECISION,
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
)

_UPDATABLE = (
    "name",
    "allowed_models",
    "rpm",
    "max_concurrency",
    "quota",
    "quota_period",
    "expires_at",
)


class KeyUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; an UNSET field is left alone, None clears a limit."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    allowed_models: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    rpm: int | msgspec.UnsetType | None = msgspec.UNSET
    max_concurrency: int | msgspec.UnsetType | None = msgspec.UNSET
    quota: int | msgspec.UnsetType | None = msgspec.UNSET
    quota_period: QuotaPeriod | msgspec.UnsetType | None = msgspec.UNSET
    expires_at: float | msgspec.UnsetType | None = msgspec.UNSET

    def columns(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in _UPDATABLE:
            value = getattr(self, field)
            if value is msgspec.UNSET:
                continue
            out[field] = _models_text(value) if field == "allowed_models" else value
        return out


class KeyStore(Protocol):
    async def start(self, *, create: bool = True) -> None: ...
    async def close(self) -> None: ...
    async def insert(self, key: Key, secret_hash: str) -> None: ...
    async def load(self) -> list[tuple[str, Key]]: ...
    async def get(self, key_id: str) -> Key | None: ...
    async def update(self, key_id: str, update: KeyUpdate) -> Key | None: ...
    async def revoke(self, key_id: str) -> Key | None: ...


def open_key_store(
    url: str,
    *,
    clock: Callable[[], float] = time.time,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
) -> KeyStore:
    parsed = parse_store_url(url)
    timeouts = {"read_timeout_s": read_timeout_s, "write_timeout_s": write_timeout_s}
    if parsed.dialect == "sqlite":
        return SqliteKeyStore(parsed, clock=clock, **timeouts)
    return PostgresKeyStore(parsed, clock=clock, **timeouts)


def _models_text(models: list[str] | frozenset[str] | None) -> str | None:
    return None if models is None else msgspec.json.encode(sorted(models)).decode()


def _row_to_key(row: tuple[Any, ...] | Any) -> tuple[str, Key]:
    models = row[2]
    key = Key(
        id=row[0],
        name=row[1],
        allowed_models=None if models is None else frozenset(msgspec.json.decode(models)),
        rpm=row[3],
        max_concurrency=row[4],
        quota=row[5],
        quota_period=row[6],
        expires_at=row[7],
        revoked=bool(row[8]),
        created_at=float(row[9]),
    )
    return str(row[10]), key


def _insert_params(key: Key, secret_hash: str, now: float) -> tuple[Any, ...]:
    return (
        key.id,
        key.name,
        secret_hash,
        _models_text(key.allowed_models),
        key.rpm,
        key.max_concurrency,
        key.quota,
        key.quota_period,
        key.expires_at,
        key.revoked,
        key.created_at or now,
        now,
    )


class SqliteKeyStore(SqliteDatabase):
    def __init__(
        self,
        url: StoreUrl,
        *,
        clock: Callable[[], float] = time.time,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
    ) -> None:
        super().__init__(
            url,
            "keys",
            _SQLITE_STEPS,
            read_timeout_s=read_timeout_s,
            write_timeout_s=write_timeout_s,
        )
        self._clock = clock

    async def insert(self, key: Key, secret_hash: str) -> None:
        params = _insert_params(key, secret_hash, self._clock())
        sql = (
            "INSERT INTO warmgate_keys (id, name, secret_hash, allowed_models, rpm, "
            "max_concurrency, quota, quota_period, expires_at, revoked, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        await self.run(lambda db: db.execute(sql, params), write=True)

    async def load(self) -> list[tuple[str, Key]]:
        sql = f"SELECT {_COLUMNS} FROM warmgate_keys ORDER BY created_at, id"  # noqa: S608 constant
        rows = await self.run(lambda db: db.execute(sql).fetchall())
        return [_row_to_key(row) for row in rows]

    async def get(self, key_id: str) -> Key | None:
        sql = f"SELECT {_COLUMNS} FROM warmgate_keys WHERE id = ?"  # noqa: S608 constant columns
        row = await self.run(lambda db: db.execute(sql, (key_id,)).fetchone())
        return None if row is None else _row_to_key(row)[1]

    async def update(self, key_id: str, update: KeyUpdate) -> Key | None:
        columns = update.columns()
        columns["updated_at"] = self._clock()
        assignments = ", ".join(f"{name} = ?" for name in columns)
        sql = f"UPDATE warmgate_keys SET {assignments} WHERE id = ?"  # noqa: S608 whitelisted
        params = (*columns.values(), key_id)

        def run(db: sqlite3.Connection) -> None:
            with transaction(db) as conn:
                conn.execute(sql, params)

        await self.run(run, write=True)
        return await self.get(key_id)

    async def revoke(self, key_id: str) -> Key | None:
        sql = "UPDATE warmgate_keys SET revoked = 1, updated_at = ? WHERE id = ?"
        now = self._clock()
        await self.run(lambda db: db.execute(sql, (now, key_id)), write=True)
        return await self.get(key_id)


class PostgresKeyStore(PostgresDatabase):
    def __init__(
        self,
        url: StoreUrl,
        *,
        clock: Callable[[], float] = time.time,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
    ) -> None:
        super().__init__(
            url,
            "keys",
            _POSTGRES_STEPS,
            max_connections=2,
            read_timeout_s=read_timeout_s,
            write_timeout_s=write_timeout_s,
        )
        self._clock = clock

    async def insert(self, key: Key, secret_hash: str) -> None:
        await self.execute(
            "INSERT INTO warmgate_keys (id, name, secret_hash, allowed_models, rpm, "
            "max_concurrency, quota, quota_period, expires_at, revoked, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            *_insert_params(key, secret_hash, self._clock()),
        )

    async def load(self) -> list[tuple[str, Key]]:
        rows = await self.fetch(
            f"SELECT {_COLUMNS} FROM warmgate_keys ORDER BY created_at, id"  # noqa: S608 constant
        )
        return [_row_to_key(tuple(row)) for row in rows]

    async def get(self, key_id: str) -> Key | None:
        row = await self.fetchrow(
            f"SELECT {_COLUMNS} FROM warmgate_keys WHERE id = $1",  # noqa: S608 constant
            key_id,
        )
        return None if row is None else _row_to_key(tuple(row))[1]

    async def update(self, key_id: str, update: KeyUpdate) -> Key | None:
        columns = update.columns()
        columns["updated_at"] = self._clock()
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=1))
        sql = f"UPDATE warmgate_keys SET {assignments} WHERE id = ${len(columns) + 1}"  # noqa: S608
        await self.execute(sql, *columns.values(), key_id)
        return await self.get(key_id)

    async def revoke(self, key_id: str) -> Key | None:
        await self.execute(
            "UPDATE warmgate_keys SET revoked = TRUE, updated_at = $1 WHERE id = $2",
            self._clock(),
            key_id,
        )
        return await self.get(key_id)
