"""The gateway's ledger as `fleet cost` reads it: requests and revenue per model over a window.

The one place the fleet commands touch the gateway's ledger package: the store URL is resolved
the way `warmgate usage` resolves it (`--db`, else the config's `[ledger] url`, else the
embedded gateway's SQLite file) and the sums come from the store's own usage query.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass

from warmgate.proxy.cli.options import store_options
from warmgate.proxy.cli.options import store_url as resolve_store_url
from warmgate.proxy.ledger import UsageBucket, UsageFilter, open_ledger_store
from warmgate.proxy.settings import SettingsError
from warmgate.proxy.store.database import StoreMissing

__all__ = ["LedgerError", "ModelUsage", "add_store_arguments", "model_usage", "store_url"]

MICRO_PER_USD = 1_000_000


class LedgerError(Exception):
    """The ledger's store cannot be found or read."""


@dataclass(frozen=True, slots=True)
class ModelUsage:
    requests: int
    billed_requests: int
    revenue_usd: float


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    store_options(parser, top_level=True)


def store_url(args: argparse.Namespace) -> str:
    try:
        return resolve_store_url(args, os.environ)
    except (SettingsError, ValueError) as exc:
        raise LedgerError(str(exc)) from exc


def model_usage(url: str, start_s: float, end_s: float) -> dict[str, ModelUsage]:
    """Served model name -> its requests, billed requests and revenue in [start_s, end_s)."""
    try:
        buckets = asyncio.run(_usage(url, start_s, end_s))
    except (OSError, ValueError, StoreMissing) as exc:
        raise LedgerError(f"ledger at {url.split('://', maxsplit=1)[0]}: {exc}") from exc
    return {
        b.group: ModelUsage(b.requests, b.billed_requests, b.cost_micro_usd / MICRO_PER_USD)
        for b in buckets
        if b.group is not None
    }


async def _usage(url: str, start_s: float, end_s: float) -> list[UsageBucket]:
    store = open_ledger_store(url)
    await store.start(create=False)  # reading never creates an empty ledger
    try:
        return list(await store.usage(UsageFilter(start=start_s, end=end_s), "model"))
    finally:
        await store.close()
