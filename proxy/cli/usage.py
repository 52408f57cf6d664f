"""`warmgate usage`: a table of requests, billed requests, cost and tokens from the ledger."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
from collections.abc import Mapping, Sequence

from warmgate.proxy.cli.options import run_reported, store_options, store_url
from warmgate.proxy.ledger.row import format_usd
from warmgate.proxy.ledger.stores import open_ledger_store
from warmgate.proxy.ledger.usage import GroupBy, UsageBucket, UsageFilter

PROG = "warmgate usage"

COLUMNS = ("group", "requests", "billed", "cost_usd", "prompt", "cached", "completion")


def parse_moment(value: str) -> float:
    """Unix seconds, a date (UTC midnight) or an ISO 8601 time; ValueError otherwise."""
    try:
        return float(value)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a time: give unix seconds, YYYY-MM-DD or ISO 8601"
            ) from None
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
    await store.start(create=False)  # reading never creates an empty ledger
    try:
        return await store.usage(where, group_by)
    finally:
        await store.close()


def main(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    store_options(parser, top_level=True)
    parser.add_argument("--key", help="only this key id")
    parser.add_argument("--since", help="from this time (unix s, YYYY-MM-DD or ISO 8601)")
    parser.add_argument("--until", help="before this time")
    parser.add_argument("--by", choices=("model", "day", "key"), help="group rows")
    args = parser.parse_args(list(argv))
    env = os.environ if environ is None else environ

    def body() -> int:
        url = store_url(args, env)
        where = UsageFilter(
            key_id=args.key,
            start=parse_moment(args.since) if args.since else None,
            end=parse_moment(args.until) if args.until else None,
        )
        print(render(asyncio.run(query(url, where, args.by))))
        return 0

    return run_reported(PROG, body)
