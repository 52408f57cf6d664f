"""The request ledger: one row per request id, exactly once, written in batches off the path."""

from collections.abc import Callable

from warmgate.proxy.ledger.billing import BilledReason, billing_decision
from warmgate.proxy.ledger.row import LedgerRow, format_usd, to_micro_usd
from warmgate.proxy.ledger.stores import open_ledger_store
from warmgate.proxy.ledger.usage import (
    GroupBy,
    LedgerStore,
    NullLedgerStore,
    UsageBucket,
    UsageFilter,
)
from warmgate.proxy.ledger.writer import Ledger

__all__ = [
    "BilledReason",
    "GroupBy",
    "Ledger",
    "LedgerRow",
    "LedgerStore",
    "NullLedgerStore",
    "UsageBucket",
    "UsageFilter",
    "billing_decision",
    "format_usd",
    "open_ledger",
    "open_ledger_store",
    "to_micro_usd",
]


def open_ledger(
    url: str,
    *,
    flush_interval_s: float = 0.1,
    batch_rows: int = 500,
    enabled: bool = True,
    flush_observer: Callable[[float], None] | None = None,
) -> Ledger:
    """A Ledger over the store at `url` (`sqlite:///...` or `postgresql://...`); not started.

    Disabled, it records nothing and opens no database (the bare-relay benchmark)."""
    store = open_ledger_store(url) if enabled else NullLedgerStore()
    return Ledger(
        store,
        flush_interval_s=flush_interval_s,
        batch_rows=batch_rows,
        enabled=enabled,
        flush_observer=flush_observer,
    )
