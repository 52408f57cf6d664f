"""The request ledger: one row per request id, exactly once, written in batches off the path."""

import hashlib
from collections.abc import Callable
from pathlib import Path

from warmgate.proxy.ledger.billing import BilledReason, billing_decision
from warmgate.proxy.ledger.dead_letters import DeadLetters
from warmgate.proxy.ledger.row import LedgerRow, format_usd, to_micro_usd
from warmgate.proxy.ledger.spool import Spool
from warmgate.proxy.ledger.stores import open_ledger_store
from warmgate.proxy.ledger.usage import (
    GroupBy,
    LedgerStore,
    NullLedgerStore,
    RowsRejected,
    UsageBucket,
    UsageFilter,
)
from warmgate.proxy.ledger.writer import Ledger
from warmgate.proxy.store.outage import DEFAULT_READ_TIMEOUT_S, DEFAULT_WRITE_TIMEOUT_S

SPOOL_DIR = "ledger-spool"
DEAD_LETTER_FILE = "ledger-dead-letters.jsonl"

__all__ = [
    "DEAD_LETTER_FILE",
    "SPOOL_DIR",
    "BilledReason",
    "GroupBy",
    "Ledger",
    "LedgerRow",
    "LedgerStore",
    "NullLedgerStore",
    "RowsRejected",
    "UsageBucket",
    "UsageFilter",
    "billing_decision",
    "format_usd",
    "open_ledger",
    "open_ledger_store",
    "spool_directory",
    "to_micro_usd",
]


def spool_directory(data_dir: Path, url: str) -> Path:
    """The spool of the ledger at `url`: one directory per database (named by a digest of its
    URL, which may hold a password), so that rows are only ever replayed into their own."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return data_dir / SPOOL_DIR / digest


def open_ledger(
    url: str,
    *,
    flush_interval_s: float = 0.1,
    batch_rows: int = 500,
    enabled: bool = True,
    data_dir: Path | None = None,
    spool: bool = True,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
    flush_observer: Callable[[float], None] | None = None,
) -> Ledger:
    """A Ledger over the store at `url` (`sqlite:///...` or `postgresql://...`); not started.

    With a `data_dir`, rows are spooled under it (unless `spool` is false) and rows the database
    refuses are kept in its dead-letter file. Disabled, it records nothing and opens no
    database (the bare-relay benchmark). `flush_observer` is told each batch's write time."""
    if not enabled:
        return Ledger(NullLedgerStore(), enabled=False)
    store = open_ledger_store(url, read_timeout_s=read_timeout_s, write_timeout_s=write_timeout_s)
    return Ledger(
        store,
        flush_interval_s=flush_interval_s,
        batch_rows=batch_rows,
        spool=Spool(spool_directory(data_dir, url)) if data_dir is not None and spool else None,
        dead_letters=DeadLetters(data_dir / DEAD_LETTER_FILE if data_dir is not None else None),
        read_timeout_s=read_timeout_s,
        flush_observer=flush_observer,
    )
