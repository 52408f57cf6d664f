"""Latency statistics with SGLang `bench_serving`'s definitions, computed from request outcomes.

TTFT: send → first chunk with non-empty content or reasoning. ITL: the gaps between later content
chunks. E2E: send → last chunk. TPOT: (E2E - TTFT) / (output tokens - 1), for requests with more
than one output token. Without streaming, TTFT = E2E.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec


class Outcome(msgspec.Struct, array_like=True):
    """One request as the load generator saw it. Times are seconds from the run's start."""

    status: int  # HTTP status, 0 when no response arrived
    started_s: float
    e2e_s: float
    ttft_s: float | None
    itl_s: list[float]
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    error: str | None = None
    turn: int = 0  # a conversation's turn, from 1 (0: not part of a conversation)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `values` must be sorted."""
    if not values:
        return math.nan
    rank = (len(values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def distribution_ms(values_s: Iterable[float]) -> dict[str, float | int]:
    ordered = sorted(v * 1000.0 for v in values_s)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "mean": round(sum(ordered) / len(ordered), 4),
        "p50": round(percentile(ordered, 50), 4),
        "p90": round(percentile(ordered, 90), 4),
        "p99": round(percentile(ordered, 99), 4),
        "max": round(ordered[-1], 4),
    }


def summarize(outcomes: Sequence[Outcome], wall_s: float) -> dict[str, Any]:
    """The summary every benchmark reports: throughput, latency distributions, errors, cache."""
    done = [o for o in outcomes if o.ok]
    errors: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            kind = f"{o.status}: {o.error}" if o.error else str(o.status)
            errors[kind[:120]] = errors.get(kind[:120], 0) + 1
    prompt = sum(o.prompt_tokens for o in done)
    cached = sum(o.cached_tokens for o in done)
    completion = sum(o.completion_tokens for o in done)
    tpot = [
        (o.e2e_s - o.ttft_s) / (o.completion_tokens - 1)
        for o in done
        if o.ttft_s is not None and o.completion_tokens > 1
    ]
    wall = max(wall_s, 1e-9)
    return {
        "requests": len(outcomes),
        "ok": len(done),
        "errors": errors,
        "wall_s": round(wall_s, 4),
        "req_per_s": round(len(done) / wall, 2),
        "input_tok_per_s": round(prompt / wall, 1),
        "output_tok_per_s": round(completion / wall, 1),
        "concurrency_achieved": round(sum(o.e2e_s for o in done) / wall, 2),
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "completion_tokens": completion,
        "cache_hit_rate": round(cached / prompt, 4) if prompt else None,
        "e2e_ms": distribution_ms(o.e2e_s for o in done),
        "ttft_ms": distribution_ms(o.ttft_s for o in done if o.ttft_s is not None),
        "itl_ms": distribution_ms(gap for o in done for gap in o.itl_s),
        "tpot_ms": distribution_ms(tpot),
    }
