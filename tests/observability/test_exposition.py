"""Snapshots of several workers merged into one edge, and the per-key series kept bounded."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from warmgate.proxy.observability.exposition import (
    cut_top_keys,
    decode_snapshot,
    encode_snapshot,
    merge,
    render_families,
)
from warmgate.proxy.observability.metrics import Family, Metrics, Sample


def finished(model: str, key: str, *, billed: bool = True, status: int = 200) -> SimpleNamespace:
    return SimpleNamespace(
        model=model,
        key_id=key,
        status=status,
        billed=billed,
        price_micro_usd=2000,
        prompt_tokens=10,
        cached_tokens=4,
        completion_tokens=3,
    )


def worker(number: int, requests: int) -> Metrics:
    metrics = Metrics()
    for _ in range(requests):
        metrics.account(finished("demo", "key_a"))
        metrics.observe_ttft("b", "demo", 0.05)
    metrics.add_collector(
        lambda: [
            Family("warmgate_test_inflight", "Per worker.", "gauge", [Sample((), float(number))]),
            Family("warmgate_test_queue", "Summed.", "gauge", [Sample((), float(requests))], "sum"),
            Family("warmgate_test_peak", "Largest.", "gauge", [Sample((), float(number))], "max"),
        ]
    )
    return metrics


def parsed(text: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples
        }
    return families


def test_counters_and_histograms_are_summed_and_gauges_kept_per_worker_unless_told() -> None:
    snapshots = [worker(0, 3).snapshot(worker="0"), worker(1, 2).snapshot(worker="1")]
    travelled = [decode_snapshot(encode_snapshot(snapshot)) for snapshot in snapshots]
    families = parsed(render_families(merge(travelled)))

    tokens = families["warmgate_model_tokens"]
    assert tokens[("warmgate_model_tokens_total", (("kind", "prompt"), ("model", "demo")))] == 50
    revenue = families["warmgate_model_revenue_usd"]
    assert revenue[("warmgate_model_revenue_usd_total", (("model", "demo"),))] == 0.01
    ttft = families["warmgate_backend_ttft_seconds"]
    labels = (("backend", "b"), ("model", "demo"))
    assert ttft[("warmgate_backend_ttft_seconds_count", labels)] == 5
    bucket = (("backend", "b"), ("le", "0.05"), ("model", "demo"))
    assert ttft[("warmgate_backend_ttft_seconds_bucket", bucket)] == 5
    assert families["warmgate_test_inflight"] == {
        ("warmgate_test_inflight", (("worker", "0"),)): 0,
        ("warmgate_test_inflight", (("worker", "1"),)): 1,
    }
    assert families["warmgate_test_queue"] == {("warmgate_test_queue", ()): 5}
    assert families["warmgate_test_peak"] == {("warmgate_test_peak", ()): 1}


def test_only_the_busiest_keys_get_series_of_their_own() -> None:
    metrics = Metrics(top_keys=2)
    for key, requests in (("key_a", 1), ("key_b", 5), ("key_c", 3), ("key_d", 2)):
        for _ in range(requests):
            metrics.account(finished("demo", key, billed=key != "key_c"))
    families = parsed(render_families(cut_top_keys(metrics.snapshot(), metrics.top_keys)))
    for name in ("warmgate_key_requests", "warmgate_key_billed_requests"):
        assert sorted(dict(labels)["key"] for _, labels in families[name]) == ["key_b", "key_c"]
    assert (
        families["warmgate_key_billed_requests"][
            ("warmgate_key_billed_requests_total", (("key", "key_c"),))
        ]
        == 0
    )


def test_a_request_without_a_model_counts_nowhere_and_top_keys_0_counts_no_key() -> None:
    metrics = Metrics(top_keys=0)
    metrics.account(finished("demo", "key_a"))
    no_model = finished("demo", "key_a")
    no_model.model = None
    metrics.account(no_model)
    families = parsed(metrics.render())
    assert families["warmgate_model_requests"] == {
        ("warmgate_model_requests_total", (("model", "demo"), ("status", "200"))): 1
    }
    assert families["warmgate_key_requests"] == {}
