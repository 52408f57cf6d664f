"""The statistics every benchmark reports, with SGLang bench_serving's definitions."""

from __future__ import annotations

import math

from benchmarks.stats import Outcome, percentile, summarize


def outcome(e2e_s: float, ttft_s: float | None, completion: int, *, status: int = 200) -> Outcome:
    return Outcome(status, 0.0, e2e_s, ttft_s, [0.01] * max(completion - 1, 0), 100, 40, completion)


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert math.isclose(percentile(values, 90), 3.7)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def test_tpot_is_time_after_the_first_token_over_the_remaining_tokens() -> None:
    summary = summarize([outcome(1.0, 0.2, 5)], wall_s=1.0)
    assert summary["tpot_ms"]["p50"] == 200.0  # (1.0 - 0.2) / (5 - 1)
    assert summary["ttft_ms"]["p50"] == 200.0
    assert summary["itl_ms"]["count"] == 4


def test_failed_requests_count_as_errors_and_stay_out_of_latencies() -> None:
    results = [outcome(0.1, 0.1, 1), outcome(9.0, None, 0, status=503)]
    summary = summarize(results, wall_s=2.0)
    assert summary["ok"] == 1
    assert summary["errors"] == {"503": 1}
    assert summary["e2e_ms"]["max"] == 100.0
    assert summary["req_per_s"] == 0.5


def test_cache_hit_rate_is_cached_over_prompt_tokens() -> None:
    summary = summarize([outcome(0.1, 0.1, 2), outcome(0.1, 0.1, 2)], wall_s=1.0)
    assert summary["cache_hit_rate"] == 0.4
    assert summary["tpot_ms"]["count"] == 2
