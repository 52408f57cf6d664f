"""`warmgate usage`: a table of requests, billed requests, cost and tokens from the ledger."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Sequence

from warmgate.proxy.ledger.row import format_usd
from warmgate.proxy.ledger.stores import open_ledger_store
from warmgate.proxy.ledger.usage import GroupBy, UsageBucket, UsageFilter
from warmgate.proxy.settings import Settings, SettingsError, load_settings

COLUMNS = ("group", "requests", "billed", "cost_usd", "prompt", "cached", "completion")


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML settings file (its [ledger] url is used)")
    parser.add_argument("--db", help="store URL: sqlite:///path or postgresql://...")
    parser.add_argument("--data-dir", help="the data directory of a gateway run without --config")


def resolve_store_url(args: argparse.Namespace) -> str:
    """--db, else the config's ledger URL, else the embedded gateway's SQLite file."""
    if args.db:
        return str(args.db)
    if args.config:
        return load_settings(args.config).ledger_url
    if args.data_dir:
        return Settings(data_dir=args.data_dir).ledger_url
    return Settings().ledger_url


def parse_moment(value: str) -> float:
    """Unix seconds, a date (UTC midnight) or an ISO 8601 time."""
    try:
        return float(value)
    except ValueError:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp()


def render(buckets: Sequence[UsageBucket]) -> str:
    rows = [COLUMNS] + [
        (
            b.group or "total",
            str(b.requests),
            str(b.billed_requests),
            format_usd(b.cost_micro_usd),
            str(b.prompt_tokens),
            str(b.cached_tokens),
            str(b.completion_tokens),
        )
        for b in buckets
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


async def query(url: str, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]:
    store = open_ledger_store(url)
    await store.start()
    try:
        return await store.usage(where, group_by)
    finally:
        await store.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="warmgate usage", description=__doc__)
    add_store_arguments(parser)
    parser.add_argument("--key", help="only this key id")
    parser.add_argument("--since", help="from this time (unix s, YYYY-MM-DD or ISO 8601)")
    parser.add_argument("--until", help="before this time")
    parser.add_argument("--by", choices=("model", "day", "key"), help="group rows")
    args = parser.parse_args(list(argv))
    try:
        url = resolve_store_url(args)
        where = UsageFilter(
            key_id=args.key,
            start=parse_moment(args.since) if args.since else None,
            end=parse_moment(args.until) if args.until else None,
        )
    except (SettingsError, ValueError) as exc:
        print(f"warmgate usage: {exc}", file=sys.stderr)
        return 2
    buckets = asyncio.run(query(url, where, args.by))
    print(render(buckets))
    return 0
