"""Prometheus metrics: counters and histograms kept in plain dicts, rendered by hand.

Everything runs on the event loop thread, so an observation is a dict lookup, a bisect and a
few additions: no locks, no client library. Gauges (health, outstanding work) are not stored:
collectors registered by their owners produce them at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from warmgate.proxy.media import PROMETHEUS

CONTENT_TYPE = PROMETHEUS

# Time to first token: from a few ms (cached prompt) to minutes (128k-token prefill, queue).
TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
INTER_TOKEN_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
# The gateway's own time per request, excluding the backend: tens of microseconds to ms.
OVERHEAD_BUCKETS_S = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

Labels = tuple[tuple[str, str], ...]


class Sample(NamedTuple):
    labels: Labels
    value: float


class Family(NamedTuple):
    """A gauge family produced by a collector at scrape time."""

    name: str
    help: str
    type: str
    samples: Sequence[Sample]


Collector = Callable[[], Iterable[Family]]


class Counter:
    __slots__ = ("help", "name", "values")

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}\n# TYPE {self.name} counter\n")
        for labels, value in self.values.items():
            out.append(f"{self.name}{_labels(labels)} {_number(value)}\n")


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

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}\n# TYPE {self.name} histogram\n")
        for labels, series in self.series.items():
            cumulative = 0.0
            for bound, count in zip(self.bounds, series, strict=False):
                cumulative += count
                le = (*labels, ("le", _number(bound)))
                out.append(f"{self.name}_bucket{_labels(le)} {_number(cumulative)}\n")
            cumulative += series[len(self.bounds)]
            inf = (*labels, ("le", "+Inf"))
            out.append(f"{self.name}_bucket{_labels(inf)} {_number(cumulative)}\n")
            out.append(f"{self.name}_sum{_labels(labels)} {_number(series[-1])}\n")
            out.append(f"{self.name}_count{_labels(labels)} {_number(cumulative)}\n")


class Metrics:
    """The gateway's metrics. One instance per app, created in the lifespan and injected."""

    def __init__(self) -> None:
        self.backend_requests = Counter(
            "warmgate_backend_requests_total", "Requests finished per backend, by outcome."
        )
        self.backend_errors = Counter(
            "warmgate_backend_errors_total",
            "Requests that failed at the backend (connection, 5xx, timeout, cut stream).",
        )
        self.model_requests = Counter(
            "warmgate_model_requests_total", "Requests per model and HTTP status."
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
        self._collectors: list[Collector] = []

    def add_collector(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def remove_collector(self, collector: Collector) -> None:
        if collector in self._collectors:
            self._collectors.remove(collector)

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

    def model_request(self, model: str, status: int) -> None:
        self.model_requests.inc((("model", model), ("status", str(status))))

    def render(self) -> str:
        out: list[str] = []
        for metric in (self.backend_requests, self.backend_errors, self.model_requests):
            metric.render(out)
        for histogram in (self.ttft, self.inter_token, self.overhead):
            histogram.render(out)
        for collector in self._collectors:
            for family in collector():
                out.append(f"# HELP {family.name} {family.help}\n")
                out.append(f"# TYPE {family.name} {family.type}\n")
                out.extend(
                    f"{family.name}{_labels(s.labels)} {_number(s.value)}\n" for s in family.samples
                )
        return "".join(out)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
