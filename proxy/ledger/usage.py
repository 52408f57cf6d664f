"""Usage sums over ledger rows: the query both stores run, the bucket it returns, and the
time bounds of a query as the usage API and the console read them from a query string."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from itertools import chain
from typing import Literal, Protocol

import msgspec
from msgspec.structs import astuple

from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.ledger.row import FIELDS, LedgerRow
from warmgate.proxy.store.database import Dialect

GroupBy = Literal["day", "model", "key"]

TABLE = "warmgate_ledger"


class UsageBucket(msgspec.Struct, kw_only=True):
    group: str | None  # the day (YYYY-MM-DD, UTC), model or key id; None for one total
    requests: int = 0
    billed_requests: int = 0
    cost_micro_usd: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0


class UsageFilter(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str | None = None  # None: every key (admin)
    start: float | None = None  # unix seconds, inclusive
    end: float | None = None  # unix seconds, exclusive
    model: str | None = None


def parse_time(value: str | None, param: str) -> float | None:
    """Unix seconds, a date (`2026-11-28`, UTC midnight) or an ISO 8601 time; None if absent."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"Invalid '{param}': expected unix seconds, a date (YYYY-MM-DD) or an ISO 8601 time.",
            param=param,
            code="invalid_value",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def admitted_sql(dialect: Dialect) -> str:
    """Requests per key since a time that went past the gateway's own checks (what a quota
    counts): every row except the gateway's 4xx answers."""
    return (
        f"SELECT key_id, COUNT(*) FROM {TABLE} "  # noqa: S608 constant table
        f"WHERE started_at >= {_placeholder(dialect, 1)} AND key_id IS NOT NULL "
        "AND billed_reason <> 'client_error' GROUP BY key_id"
    )


class RowsRejected(Exception):  # noqa: N818  # named for what happened, as StoreUnavailable
    """The database refused the rows of an insert for what they hold (a value it cannot store,
    a constraint), not because it is away: a smaller batch may land."""


class LedgerStore(Protocol):
    """Inserts raise `RowsRejected` when the rows were refused, `StoreUnavailable` when the
    database is away or too slow; reads raise `StoreUnavailable` likewise."""

    async def start(self, *, create: bool = True) -> None: ...
    async def close(self) -> None: ...
    async def insert(self, rows: list[LedgerRow]) -> int: ...
    async def get(self, request_id: str) -> LedgerRow | None: ...
    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]: ...
    async def rows(self, where: UsageFilter) -> list[LedgerRow]: ...
    async def admitted_since(self, start: float) -> dict[str, int]: ...


_DAY = {
    "sqlite": "strftime('%Y-%m-%d', started_at, 'unixepoch')",
    "postgresql": "to_char(to_timestamp(started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def _placeholder(dialect: Dialect, index: int) -> str:
    return "?" if dialect == "sqlite" else f"${index}"


def where_sql(dialect: Dialect, where: UsageFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for column, op, value in (
        ("key_id", "=", where.key_id),
        ("model", "=", where.model),
        ("started_at", ">=", where.start),
        ("started_at", "<", where.end),
    ):
        if value is not None:
            params.append(value)
            clauses.append(f"{column} {op} {_placeholder(dialect, len(params))}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def usage_sql(
    dialect: Dialect, where: UsageFilter, group_by: GroupBy | None
) -> tuple[str, list[object]]:
    group = {"day": _DAY[dialect], "model": "model", "key": "key_id", None: "NULL"}[group_by]
    condition, params = where_sql(dialect, where)
    sql = (
        f"SELECT {group} AS grp, COUNT(*), "  # noqa: S608 expressions are constants
        "COALESCE(SUM(CASE WHEN billed THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN billed THEN price_micro_usd ELSE 0 END), 0), "
        "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
        f"COALESCE(SUM(completion_tokens), 0) FROM {TABLE}{condition}"
    )
    if group_by is not None:
        sql += " GROUP BY grp ORDER BY grp"
    return sql, params


def rows_sql(dialect: Dialect, where: UsageFilter) -> tuple[str, list[object]]:
    condition, params = where_sql(dialect, where)
    columns = ", ".join(FIELDS)
    return f"SELECT {columns} FROM {TABLE}{condition} ORDER BY started_at", params  # noqa: S608


def bucket(record: tuple[object, ...]) -> UsageBucket:
    values = [int(v) for v in record[1:]]  # type: ignore[call-overload]
    return UsageBucket(
        group=None if record[0] is None else str(record[0]),
        requests=values[0],
        billed_requests=values[1],
        cost_micro_usd=values[2],
        prompt_tokens=values[3],
        cached_tokens=values[4],
        completion_tokens=values[5],
    )


_BOOLEANS = frozenset({"stream", "billed", "cancelled"})


def row_from_record(record: tuple[object, ...]) -> LedgerRow:
    values = {
        name: bool(value) if name in _BOOLEANS else value
        for name, value in zip(FIELDS, record, strict=True)
    }
    return msgspec.convert(values, LedgerRow)


def rows_params(rows: Iterable[LedgerRow]) -> list[object]:
    """The rows' values one row after the other, each in FIELDS order: the parameters of one
    multi-row INSERT (built in C: a Python loop over 21 fields cost ~10k instructions a row)."""
    return list(chain.from_iterable(map(astuple, rows)))


class NullLedgerStore:
    """The store of a ledger switched off (`[ledger] enabled = false`): keeps nothing."""

    async def start(self, *, create: bool = True) -> None:
        return None

    async def close(self) -> None:
        return None

    async def insert(self, rows: list[LedgerRow]) -> int:
        return 0

    async def get(self, request_id: str) -> LedgerRow | None:
        return None

    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]:
        return []

    async def rows(self, where: UsageFilter) -> list[LedgerRow]:
        return []

    async def admitted_since(self, start: float) -> dict[str, int]:
        return {}
