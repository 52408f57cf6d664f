"""The ledger's rows as a test reads them back: straight from the store, after the gateway."""

from __future__ import annotations

from warmgate.proxy.ledger import LedgerRow, UsageFilter, open_ledger_store


async def stored_rows(url: str, where: UsageFilter | None = None) -> list[LedgerRow]:
    """Every row (or those `where` selects) in the ledger store at `url`."""
    store = open_ledger_store(url)
    await store.start()
    try:
        return await store.rows(where or UsageFilter())
    finally:
        await store.close()
