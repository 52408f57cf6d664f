"""Counters and histograms of one replica, rendered as SGLang's `sglang:` Prometheus metrics.

Names, label sets and bucket bounds follow SGLang 0.5.23's
`srt/observability/metrics_collector.py`; values are simulated seconds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warmgate.backends.sim.generation import Generation

TTFT_BUCKETS = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400)
E2E_BUCKETS = (*TTFT_BUCKETS, 600, 1200, 1800, 2400)
ITL_BUCKETS = (
    0.002,
    0.004,
    0.006,
    0.008,
    0.010,
    0.015,
    0.020,
    0.025,
    0.030,
    0.035,
    0.040,
    0.060,
    0.080,
    0.100,
    0.200,
    0.400,
    0.600,
    0.800,
    1.000,
    2.000,
    4.000,
    6.000,
    8.000,
)
RECENT_REQUESTS = 256


class Histogram:
    """A Prometheus histogram without labels beyond those the renderer adds."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def render(self, name: str, labels: str) -> list[str]:
        lines = []
        total = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            total += count
            lines.append(f'{name}_bucket{{{labels},le="{float(bound)}"}} {float(total)}')
        total += self.counts[-1]
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(total)}')
        lines.append(f"{name}_count{{{labels}}} {float(total)}")
        lines.append(f"{name}_sum{{{labels}}} {self.sum}")
        return lines


class RequestRecord:
    """What /_sim/stats reports about one finished request (simulated seconds)."""

    __slots__ = (
        "cached_tokens",
        "completion_tokens",
        "e2e_s",
        "finish_reason",
        "itl_s",
        "prompt_tokens",
        "queue_s",
        "rid",
        "ttft_s",
    )

    def __init__(self, generation: Generation) -> None:
        self.rid = generation.rid
        self.prompt_tokens = generation.prompt_tokens
        self.cached_tokens = generation.cached_tokens
        self.completion_tokens = generation.generated
        self.finish_reason = generation.finish_reason
        self.queue_s = generation.queue_s
        self.ttft_s = generation.ttft_s
        self.itl_s = generation.mean_itl_s
        self.e2e_s = generation.finished_at - generation.arrived_at

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


class RequestSeries:
    """Finished-request metrics of one `is_streaming` label value (TokenizerMetricsCollector)."""

    def __init__(self) -> None:
        self.requests = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)

    def observe(self, generation: Generation) -> None:
        self.requests += 1
        self.prompt_tokens += generation.prompt_tokens
        self.generation_tokens += generation.generated
        self.ttft.observe(generation.ttft_s)
        self.e2e.observe(generation.finished_at - generation.arrived_at)


class Telemetry:
    """Everything counted on one replica; the scheduler and the routes feed it."""

    def __init__(self) -> None:
        self.requests_received = 0
        self.requests_completed = 0
        self.aborted = 0
        self.rejected_queue_full = 0
        self.faults_injected = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.cached_tokens = 0
        self.prefill_tokens_computed = 0
        self.decode_steps = 0
        self.itl = Histogram(ITL_BUCKETS)
        self.series = {False: RequestSeries(), True: RequestSeries()}  # by is_streaming
        self.recent: deque[RequestRecord] = deque(maxlen=RECENT_REQUESTS)
        self.last_request_path: str | None = None
        self.last_request_body: object = None

    @property
    def cache_hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def prefilled(self, generation: Generation) -> None:
        if generation.log_metrics:
            self.prompt_tokens += generation.prompt_tokens
            self.cached_tokens += generation.cached_tokens
            self.prefill_tokens_computed += generation.prompt_tokens - generation.cached_tokens
            self.generation_tokens += 1  # the prefill pass samples the first token

    def decoded(self, batch_size: int) -> None:
        self.decode_steps += 1
        self.generation_tokens += batch_size

    def completed(self, generation: Generation) -> None:
        if not generation.log_metrics:
            return
        self.requests_completed += 1
        self.series[generation.streaming].observe(generation)
        self.recent.append(RequestRecord(generation))
