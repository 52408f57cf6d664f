"""A small ledger the console tests draw from: known rows at known times, and what they sum to.

Rows fall on three whole UTC days that have ended (so every figure is fixed), over two models and
three keys, with a few refused and failed requests; `expected_*` compute the figures the way the
reports define them, in plain Python, for the tests to compare against what SQL and the browser
produce.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable

from warmgate.proxy.ledger import LedgerRow

DAY_S = 86400
PRICE_MICRO_USD = 2000


def seed_days(now: float, days: int = 3) -> list[float]:
    """The starts of the last `days` whole UTC days before today."""
    today = math.floor(now / DAY_S) * DAY_S
    return [float(today - DAY_S * (days - i)) for i in range(days)]


def day_label(start: float) -> str:
    return dt.datetime.fromtimestamp(start, dt.UTC).date().isoformat()


def seeded_rows(
    days: list[float],
    *,
    keys: list[str],
    models: dict[str, str],
    rng: random.Random | None = None,
) -> list[LedgerRow]:
    """Rows on each day: per model (-> its backend id), a different number per day and key."""
    rng = rng or random.Random(7)
    rows: list[LedgerRow] = []
    for day_index, day in enumerate(days):
        for model_index, (model, backend) in enumerate(models.items()):
            for key_index, key in enumerate(keys):
                count = 3 + day_index * 2 + model_index + key_index * 3
                for i in range(count):
                    started = day + 3600 * (1 + (i % 20)) + 60 * key_index + i
                    status = 200
                    if i == 0 and key_index == 1:
                        status = 429  # refused by the gateway: not billed, no latency
                    elif i == 1 and model_index == 1:
                        status = 502  # the backend failed: not billed
                    answered = status == 200
                    ttft = round(rng.uniform(20, 400), 3) if answered else None
                    total = round((ttft or 0) + rng.uniform(100, 3000), 3)
                    rows.append(
                        LedgerRow(
                            request_id=f"req_seed_{len(rows):06d}",
                            key_id=key,
                            model=model,
                            backend=backend if status != 429 else None,
                            endpoint="/v1/chat/completions",
                            stream=True,
                            started_at=started,
                            finished_at=started + total / 1000,
                            status=status,
                            billed=answered,
                            billed_reason="completed" if answered else "client_error",
                            price_micro_usd=PRICE_MICRO_USD,
                            prompt_tokens=100 + i,
                            cached_tokens=(100 + i) // 4,
                            completion_tokens=20 + i,
                            queue_ms=round(rng.uniform(0.1, 2.0), 3),
                            ttft_ms=ttft,
                            total_ms=total,
                        )
                    )
    return rows


def percentile_cont(values: Iterable[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont: linear between the two nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = p * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expected_usage(
    rows: list[LedgerRow], group: Callable[[LedgerRow], str | None], bucket_s: int = DAY_S
) -> dict[tuple[str | None, int], tuple[int, int, int]]:
    """(group, bucket start) -> (requests, billed requests, revenue in micro-USD)."""
    sums: dict[tuple[str | None, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        cell = sums[(group(row), int(row.started_at // bucket_s * bucket_s))]
        cell[0] += 1
        cell[1] += int(row.billed)
        cell[2] += row.cost_micro_usd
    return {k: (v[0], v[1], v[2]) for k, v in sums.items()}


def expected_latency(
    rows: list[LedgerRow], group: Callable[[LedgerRow], str | None], bucket_s: int = DAY_S
) -> dict[tuple[str | None, int], dict[str, float | None]]:
    """(group, bucket start) -> {"ttft_p50_ms": ..., ...} over the answered rows."""
    cells: dict[tuple[str | None, int], list[LedgerRow]] = defaultdict(list)
    for row in rows:
        if 200 <= row.status < 300:
            cells[(group(row), int(row.started_at // bucket_s * bucket_s))].append(row)
    out = {}
    for cell, members in cells.items():
        figures: dict[str, float | None] = {"requests": float(len(members))}
        for metric in ("ttft", "total", "queue"):
            values = [getattr(r, f"{metric}_ms") for r in members]
            present = [v for v in values if v is not None]
            for p in (50, 95):
                figure = percentile_cont(present, p / 100)
                figures[f"{metric}_p{p}_ms"] = None if figure is None else round(figure, 3)
        out[cell] = figures
    return out
