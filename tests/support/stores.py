"""The PostgreSQL and Redis that run beside the suite, and a PostgreSQL schema per test."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def _execute(statement: str) -> None:
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def postgres_schema() -> Iterator[str]:
    """The DSN of a fresh schema in the `test` database, selected through its search_path, so
    that no test sees another's tables; the schema is dropped afterwards."""
    schema = f"wg_test_{secrets.token_hex(6)}"
    asyncio.run(_execute(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_DSN}?search_path={schema}"
    finally:
        asyncio.run(_execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
