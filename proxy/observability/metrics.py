"""Prometheus metrics: counters and histograms kept in plain dicts, rendered by hand.

Everything runs on the event loop thread, so an observation is a dict lookup, a bisect and a
few additions: no locks, no client library (`benchmarks/metrics_cost.py` measured
prometheus-client at several times the cost per observation, its multiprocess mode more).
Gauges (health, outstanding work, process figures) are not stored: collectors registered by
their owners produce them at scrape time. A scrape turns everything into a snapshot
(`proxy.observability.exposition`), which the workers of one edge merge before rendering.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from warmgate.proxy.observability.exposition import (
    FamilyData,
    Labels,
    SampleData,
    cut_top_keys,
    format_number,
    render_families,
)

# Time to first token: from a few ms (cached prompt) to minutes (128k-token prefill, queue).
TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
INTER_TOKEN_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
# The gateway's own time per request, excluding the backend: tens of microseconds to ms.
OVERHEAD_BUCKETS_S = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
# One ledger batch written to SQLite or PostgreSQL: a millisecond to a stalled database.
FLUSH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
# Keys shown with their own series: the busiest ones, so that the series stay bounded.
DEFAULT_TOP_KEYS = 20
MICRO_PER_USD = 1_000_000

# How a gauge of several workers becomes the edge's: summed, the largest, the smallest, or
# (None) kept per worker under a `worker` label, as prometheus-client's multiprocess mode does.
Merge = Literal["sum", "max", "min"] | None


class Sample(NamedTuple):
    labels: Labels
    value: float


class Family(NamedTuple):
    """A family produced by a collector at scrape time (a gauge, or a counter kept elsewhere)."""

    name: str
    help: str
    type: str
    samples: Sequence[Sample]
    merge: Merge = None


Collector = Callable[[], Iterable[Family]]


@runtime_checkable
class MetricSource(Protocol):
    """A component with figures of its own (the limiter's store errors, the ledger's queue):
    the runtime registers its `metric_families` as a collector."""

    def metric_families(self) -> Iterable[Family]: ...


class AccountedRequest(Protocol):
    """What the metrics read of a finished request (the ledger row has these fields)."""

    @property
    def model(self) -> str | None: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def status(self) -> int: ...
    @property
    def billed(self) -> bool: ...
    @property
    def price_micro_usd(self) -> int: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...


class Counter:
    __slots__ = ("help", "name", "values")

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def data(self) -> FamilyData:
        samples = [SampleData("", labels, value) for labels, value in self.values.items()]
        return FamilyData(self.name, self.help, "counter", samples)


class Histogram:
    __slots__ = ("bounds", "help", "name", "series")

    def __init__(self, name: str, help_text: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.help = help_text
        self.bounds = tuple(float(b) for b in bounds)
        # per label set: [count in bucket 0..n-1, count above the last bound, sum]
        self.series: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        series[bisect_left(self.bounds, value)] += 1
        series[-1] += value

    def data(self) -> FamilyData:
        """Cumulative buckets, `_sum` and `_count`, as the text format has them."""
        samples: list[SampleData] = []
        for labels, series in self.series.items():
            cumulative = 0.0
            for bound, count in zip(self.bounds, series, strict=False):
                cumulative += count
                samples.append(
                    SampleData("_bucket", (*labels, ("le", format_number(bound))), cumulative)
                )
            cumulative += series[len(self.bounds)]
            samples.append(SampleData("_bucket", (*labels, ("le", "+Inf")), cumulative))
            samples.append(SampleData("_sum", labels, series[-1]))
            samples.append(SampleData("_count", labels, cumulative))
        return FamilyData(self.name, self.help, "histogram", samples)


class Metrics:
    """The gateway's metrics. One instance per app, created in the lifespan and injected."""

    def __init__(self, *, top_keys: int = DEFAULT_TOP_KEYS) -> None:
        self.top_keys = top_keys
        self.backend_requests = Counter(
            "warmgate_backend_requests_total", "Requests finished per backend, by outcome."
        )
        self.backend_errors = Counter(
            "warmgate_backend_errors_total",
            "Requests that failed at the backend (connection, 5xx, timeout, cut stream).",
        )
        self.rate_limited = Counter(
            "warmgate_rate_limited_total", "Requests refused with 429, by the limit they hit."
        )
        self.ttft = Histogram(
            "warmgate_backend_ttft_seconds", "Time to the first streamed chunk.", TTFT_BUCKETS_S
        )
        self.inter_token = Histogram(
            "warmgate_backend_inter_token_seconds",
            "Time between streamed chunks.",
            INTER_TOKEN_BUCKETS_S,
        )
        self.overhead = Histogram(
            "warmgate_gateway_overhead_seconds",
            "Time the gateway itself spent on a request, backend time excluded.",
            OVERHEAD_BUCKETS_S,
        )
        self.ledger_flush = Histogram(
            "warmgate_ledger_flush_seconds",
            "Time to write one batch of ledger rows to the store.",
            FLUSH_BUCKETS_S,
        )
        # Finished requests counted by what sets them apart, folded into the per-model and
        # per-key families at scrape time: one dictionary update per request, not one per
        # family. (model, status, billed, price in micro-USD) -> requests.
        self._by_model: dict[tuple[str, int, bool, int], int] = {}
        # model -> [prompt, cached, completion tokens]
        self._tokens: dict[str, list[int]] = {}
        # (key id, billed, price in micro-USD) -> requests
        self._by_key: dict[tuple[str, bool, int], int] = {}
        self._collectors: list[Collector] = []

    def add_collector(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def remove_collector(self, collector: Collector) -> None:
        if collector in self._collectors:
            self._collectors.remove(collector)

    # -- the request path: each a dict lookup and a few additions ---------------------------

    def backend_request(self, backend: str, model: str, outcome: str, *, failed: bool) -> None:
        labels = (("backend", backend), ("model", model))
        self.backend_requests.inc((*labels, ("outcome", outcome)))
        if failed:
            self.backend_errors.inc(labels)

    def observe_ttft(self, backend: str, model: str, seconds: float) -> None:
        self.ttft.observe((("backend", backend), ("model", model)), seconds)

    def observe_inter_token(self, backend: str, model: str, seconds: float) -> None:
        self.inter_token.observe((("backend", backend), ("model", model)), seconds)

    def observe_overhead(self, seconds: float) -> None:
        self.overhead.observe((), seconds)

    def refused(self, limit: str) -> None:
        """A 429: `limit` names the limit (`rpm`, `concurrency`, `quota`, ...)."""
        self.rate_limited.inc((("limit", limit),))

    def account(self, request: AccountedRequest) -> None:
        """A finished request: its model's status count, tokens, billing and revenue, and its
        key's (rendered for the busiest `top_keys` keys only)."""
        model = request.model
        if model is None:
            return
        billed, price = request.billed, request.price_micro_usd
        group = (model, request.status, billed, price)
        by_model = self._by_model
        by_model[group] = by_model.get(group, 0) + 1
        tokens = self._tokens.get(model)
        if tokens is None:
            tokens = self._tokens[model] = [0, 0, 0]
        tokens[0] += request.prompt_tokens
        tokens[1] += request.cached_tokens
        tokens[2] += request.completion_tokens
        key_id = request.key_id
        if key_id is not None and self.top_keys:
            per_key = (key_id, billed, price)
            self._by_key[per_key] = self._by_key.get(per_key, 0) + 1

    def observe_ledger_flush(self, seconds: float) -> None:
        self.ledger_flush.observe((), seconds)

    # -- scrape time ------------------------------------------------------------------------

    def snapshot(self, worker: str | None = None) -> list[FamilyData]:
        """Every family as data. With `worker` (one of several processes), the gauges that do
        not say how to merge get a `worker` label, so that merged they stay apart."""
        families = [
            counter.data()
            for counter in (
                self.backend_requests,
                self.backend_errors,
                self.rate_limited,
            )
        ]
        families += self._usage_data()
        families += [
            histogram.data()
            for histogram in (self.ttft, self.inter_token, self.overhead, self.ledger_flush)
        ]
        for collector in self._collectors:
            for family in collector():
                families.append(_collected(family, worker))
        return families

    def render(self) -> str:
        """This process's metrics in the text format (one worker; see `exposition.merge`)."""
        return render_families(cut_top_keys(self.snapshot(), self.top_keys))

    def _usage_data(self) -> list[FamilyData]:
        statuses: dict[tuple[str, int], int] = {}
        per_model: dict[str, list[int]] = {}  # model -> [billed requests, revenue]
        for (model, status, billed, price), requests in self._by_model.items():
            statuses[model, status] = statuses.get((model, status), 0) + requests
            sums = per_model.setdefault(model, [0, 0])
            if billed:
                sums[0] += requests
                sums[1] += requests * price
        model_requests = [
            SampleData("", (("model", model), ("status", str(status))), float(requests))
            for (model, status), requests in statuses.items()
        ]
        tokens: list[SampleData] = []
        billed_samples: list[SampleData] = []
        revenue: list[SampleData] = []
        for model, (prompt, cached, completion) in self._tokens.items():
            labels = (("model", model),)
            for kind, value in (("prompt", prompt), ("cached", cached), ("completion", completion)):
                tokens.append(SampleData("", (*labels, ("kind", kind)), float(value)))
            count, micro = per_model.get(model, (0, 0))
            billed_samples.append(SampleData("", labels, float(count)))
            revenue.append(SampleData("", labels, micro / MICRO_PER_USD))
        per_key: dict[str, list[int]] = {}  # key id -> [requests, billed requests, revenue]
        for (key_id, billed, price), requests in self._by_key.items():
            sums = per_key.setdefault(key_id, [0, 0, 0])
            sums[0] += requests
            if billed:
                sums[1] += requests
                sums[2] += requests * price
        key_requests: list[SampleData] = []
        key_billed: list[SampleData] = []
        key_revenue: list[SampleData] = []
        for key_id, (requests, count, micro) in per_key.items():
            labels = (("key", key_id),)
            key_requests.append(SampleData("", labels, float(requests)))
            key_billed.append(SampleData("", labels, float(count)))
            key_revenue.append(SampleData("", labels, micro / MICRO_PER_USD))
        return [
            FamilyData(
                "warmgate_model_requests_total",
                "Requests per model and HTTP status.",
                "counter",
                model_requests,
            ),
            FamilyData(
                "warmgate_model_tokens_total",
                "Tokens per model, by kind: prompt, cached (part of prompt) and completion.",
                "counter",
                tokens,
            ),
            FamilyData(
                "warmgate_model_billed_requests_total",
                "Billed requests per model.",
                "counter",
                billed_samples,
            ),
            FamilyData(
                "warmgate_model_revenue_usd_total",
                "Revenue per model in USD: the flat price of each billed request.",
                "counter",
                revenue,
            ),
            FamilyData(
                "warmgate_key_requests_total",
                "Requests per key id, for the busiest keys only.",
                "counter",
                key_requests,
            ),
            FamilyData(
                "warmgate_key_billed_requests_total",
                "Billed requests per key id, for the busiest keys only.",
                "counter",
                key_billed,
            ),
            FamilyData(
                "warmgate_key_revenue_usd_total",
                "Revenue per key id in USD, for the busiest keys only.",
                "counter",
                key_revenue,
            ),
        ]


def _collected(family: Family, worker: str | None) -> FamilyData:
    if worker is not None and family.type == "gauge" and family.merge is None:
        apart: Labels = (("worker", worker),)
        samples = [SampleData("", (*s.labels, *apart), s.value) for s in family.samples]
    else:
        samples = [SampleData("", s.labels, s.value) for s in family.samples]
    return FamilyData(family.name, family.help, family.type, samples, family.merge or "sum")
