"""One ledger row per request id, and the money type it carries.

Prices are integer micro-USD (1 USD = 1_000_000): exact sums in SQL on both SQLite and
PostgreSQL, no float rounding. `price_micro_usd` is the model's flat price per request; the
request costs that when `billed` is true and nothing otherwise.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import msgspec

MICRO_PER_USD = 1_000_000


class LedgerRow(msgspec.Struct, kw_only=True):
    request_id: str
    key_id: str | None
    model: str | None
    backend: str | None
    endpoint: str
    stream: bool
    started_at: float  # unix seconds
    finished_at: float
    status: int  # the HTTP status the client received
    billed: bool
    billed_reason: str
    price_micro_usd: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    queue_ms: float = 0.0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    retries: int = 0
    cancelled: bool = False
    error_code: str | None = None

    @property
    def cost_micro_usd(self) -> int:
        return self.price_micro_usd if self.billed else 0


FIELDS: tuple[str, ...] = LedgerRow.__struct_fields__


def to_micro_usd(price: Decimal | str | float | int) -> int:
    """A USD price from the config (`"0.002"`, 0.002) as integer micro-USD."""
    amount = Decimal(str(price)) * MICRO_PER_USD
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_usd(micro_usd: int) -> str:
    """Micro-USD as a decimal USD string with six places: 2000 -> `0.002000`."""
    return f"{Decimal(micro_usd) / MICRO_PER_USD:.6f}"
