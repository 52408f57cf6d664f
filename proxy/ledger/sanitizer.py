"""A ledger row made storable in both databases, whatever the request and the backend sent.

A row carries text a client chose (the model name of a request answered 404) and numbers a
backend reported (token counts). PostgreSQL refuses NUL in text and integers past their column;
neither driver can encode a lone surrogate; an index refuses a key of several kilobytes; a NaN
becomes NULL in SQLite's NOT NULL columns; SQLite's SUM fails past 64 bits. One such row used
to fail every batch it was in. So before a row is spooled or queued: control characters (C0,
DEL, C1) and lone surrogates in its text become U+FFFD, text is cut at `MAX_TEXT_CHARS`,
integers are clamped into their columns (tokens and prices below a ceiling that stays
summable), and timings that are not finite become 0 (or None where a column allows it).

A clean row, the usual case, costs one `isprintable()` and one length check for all its text
and one comparison per number, and is returned as it came.
"""

from __future__ import annotations

import math
import re

import msgspec

from warmgate.proxy.ledger.row import LedgerRow

MAX_TEXT_CHARS = 512  # a backend id is the model name and the backend's URL
REPLACEMENT = "\ufffd"
INT32_MAX = 2**31 - 1  # PostgreSQL INTEGER: status, retries
# Tokens and prices are summed by the usage queries, and SQLite's SUM fails past 64 bits: a
# ceiling far above any request (a context window, a price), yet summable over 4 billion rows.
MAX_TOKENS = INT32_MAX
MAX_PRICE_MICRO_USD = 2**40 - 1  # about 1.1 million USD per request

TEXT_FIELDS = (
    "request_id",
    "key_id",
    "model",
    "backend",
    "endpoint",
    "billed_reason",
    "error_code",
)
INT_LIMITS = (
    ("status", INT32_MAX),
    ("retries", INT32_MAX),
    ("price_micro_usd", MAX_PRICE_MICRO_USD),
    ("prompt_tokens", MAX_TOKENS),
    ("cached_tokens", MAX_TOKENS),
    ("completion_tokens", MAX_TOKENS),
)
FLOAT_FIELDS = ("started_at", "finished_at", "queue_ms", "total_ms")

_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: str) -> str:
    """`value` without control characters or lone surrogates, at most MAX_TEXT_CHARS long."""
    if len(value) > MAX_TEXT_CHARS:
        value = value[:MAX_TEXT_CHARS]
    if value.isprintable():  # fast path; false also for harmless text (U+00A0, tags, ...)
        return value
    return _UNSTORABLE.sub(REPLACEMENT, value)


def _storable(row: LedgerRow) -> bool:
    """The usual case, in a few C calls: the text fields side by side (None reads "None") are
    printable and together no longer than one field may be; the numbers within their columns."""
    texts = (
        f"{row.request_id}{row.key_id}{row.model}{row.backend}{row.endpoint}"
        f"{row.billed_reason}{row.error_code}"
    )
    return (
        len(texts) <= MAX_TEXT_CHARS
        and texts.isprintable()
        and 0 <= row.status <= INT32_MAX
        and 0 <= row.retries <= INT32_MAX
        and 0 <= row.price_micro_usd <= MAX_PRICE_MICRO_USD
        and 0 <= row.prompt_tokens <= MAX_TOKENS
        and 0 <= row.cached_tokens <= MAX_TOKENS
        and 0 <= row.completion_tokens <= MAX_TOKENS
        and math.isfinite(row.started_at + row.finished_at + row.queue_ms + row.total_ms)
        and (row.ttft_ms is None or math.isfinite(row.ttft_ms))
    )


def sanitized(row: LedgerRow) -> LedgerRow:
    """`row` itself when every value is storable, else a copy with the values made so."""
    if _storable(row):
        return row
    changes: dict[str, object] = {}
    for name in TEXT_FIELDS:
        text = getattr(row, name)
        if text is not None and (len(text) > MAX_TEXT_CHARS or not text.isprintable()):
            cleaned = clean_text(text)
            if cleaned != text:
                changes[name] = cleaned
    for name, limit in INT_LIMITS:
        number = getattr(row, name)
        if not 0 <= number <= limit:
            changes[name] = min(max(number, 0), limit)
    for name in FLOAT_FIELDS:
        if not math.isfinite(getattr(row, name)):
            changes[name] = 0.0
    if row.ttft_ms is not None and not math.isfinite(row.ttft_ms):
        changes["ttft_ms"] = None
    if not changes:
        return row
    return msgspec.structs.replace(row, **changes)
