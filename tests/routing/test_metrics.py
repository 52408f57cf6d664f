"""The Prometheus text the gateway serves: valid exposition format, cumulative histograms."""

from __future__ import annotations

import re

from warmgate.proxy.ledger.row import LedgerRow
from warmgate.proxy.observability.metrics import Family, Metrics, Sample

LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|NaN)$"
)


def test_every_line_follows_the_exposition_format_and_labels_are_escaped() -> None:
    metrics = Metrics()
    metrics.backend_request('we"ird\\model@http://h:1', "m\nx", "ok", failed=False)
    metrics.backend_request("b", "m", "server_error", failed=True)
    metrics.observe_ttft("b", "m", 0.3)
    metrics.observe_inter_token("b", "m", 0.002)
    metrics.observe_overhead(0.0004)
    for price in (2000, 2000, 3000):  # a price changed by a reload between requests
        metrics.account(
            LedgerRow(
                request_id="r",
                key_id="k",
                model="m",
                backend="b",
                endpoint="chat.completions",
                stream=False,
                started_at=0.0,
                finished_at=0.0,
                status=200,
                billed=True,
                billed_reason="completed",
                price_micro_usd=price,
                prompt_tokens=5,
            )
        )
    metrics.add_collector(
        lambda: [Family("warmgate_test_gauge", "A gauge.", "gauge", [Sample((("b", "x"),), 1.5)])]
    )
    text = metrics.render()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert LINE.match(line), line
    assert 'backend="we\\"ird\\\\model@http://h:1",model="m\\nx"' in text
    assert 'warmgate_test_gauge{b="x"} 1.5' in text
    assert 'warmgate_model_requests_total{model="m",status="200"} 3' in text
    assert 'warmgate_model_billed_requests_total{model="m"} 3' in text
    assert 'warmgate_model_revenue_usd_total{model="m"} 0.007' in text
    assert 'warmgate_model_tokens_total{model="m",kind="prompt"} 15' in text
    assert 'warmgate_key_revenue_usd_total{key="k"} 0.007' in text


def test_histogram_buckets_are_cumulative_and_end_at_the_count() -> None:
    metrics = Metrics()
    for seconds in (0.004, 0.01, 0.01, 0.3, 7.0, 999.0):
        metrics.observe_ttft("b", "m", seconds)
    lines = [
        line
        for line in metrics.render().splitlines()
        if line.startswith("warmgate_backend_ttft_seconds")
    ]
    buckets = [line for line in lines if "_bucket" in line]
    counts = [float(line.rsplit(" ", 1)[1]) for line in buckets]
    assert counts == sorted(counts)
    assert buckets[-1].endswith('le="+Inf"} 6')
    assert buckets[0].endswith('{backend="b",model="m",le="0.01"} 3')  # le means <=
    assert any(
        line.startswith("warmgate_backend_ttft_seconds_count") and line.endswith(" 6")
        for line in lines
    )
    total = next(line for line in lines if "_sum" in line)
    assert float(total.rsplit(" ", 1)[1]) == 0.004 + 0.01 + 0.01 + 0.3 + 7.0 + 999.0
