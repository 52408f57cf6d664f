"""Each benchmark runs end to end in a few seconds and writes its results (no timing asserted).

The benchmarks start real processes (the canned upstream, the simulator, the bare relay,
`warmgate serve`) on loopback ports and drive them with the load generator in its own process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import long_context, overhead, routing
from benchmarks.loadgen import Workload, chat_body, run_subprocess
from benchmarks.processes import free_port
from benchmarks.upstreams import canned_process


def read_result(out: Path, name: str) -> dict[str, Any]:
    for suffix in (".md", ".png"):
        assert (out / f"{name}{suffix}").stat().st_size > 0
    result: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    return result


def test_load_generator_measures_streams_and_plain_answers_from_the_canned_upstream(
    tmp_path: Path,
) -> None:
    port = free_port()
    with canned_process(tmp_path, port=port, model="demo", cpus=None) as upstream:
        url = f"http://127.0.0.1:{port}"
        upstream.wait_until(url + "/health", timeout_s=30)
        bodies = [chat_body("demo", "hi", 20, stream=False), chat_body("demo", "hi", 20, True)]
        result = run_subprocess(
            url, None, Workload(bodies=bodies), workdir=tmp_path, concurrency=2, requests=20
        )
    assert result["ok"] == 20
    assert result["errors"] == {}
    assert result["completion_tokens"] == 20 * 20
    # Half the requests streamed 20 content chunks each: 19 inter-token gaps per stream.
    assert result["itl_ms"]["count"] == 10 * 19


def test_overhead_quick_run_writes_rows_for_every_target_and_mode(tmp_path: Path) -> None:
    args = ["--quick", "--targets", "direct,bare,warmgate", "--concurrency", "2"]
    args += ["--duration", "0.3", "--warmup", "5", "--inflight", "10", "--hold-ms", "200"]
    args += ["--out", str(tmp_path), "--name", "smoke"]
    assert overhead.main(args) == 0
    result = read_result(tmp_path, "smoke")
    cells = {(row["target"], row["mode"]) for row in result["rows"]}
    assert cells == {(t, m) for t in ("direct", "bare", "warmgate") for m in overhead.MODES}
    assert all(row["errors"] == 0 and row["req_per_s"] > 0 for row in result["rows"])
    gateway_rows = [row for row in result["rows"] if row["target"] == "warmgate"]
    assert all(row["server_cpu_ms_per_req"] > 0 for row in gateway_rows)
    assert result["memory"]["targets"]["warmgate"]["ok"] == 10
    assert result["server_cpus"] is None or result["server_cpus"] != result["load_cpus"]


def test_long_context_quick_run_reports_added_ttft_per_length(tmp_path: Path) -> None:
    args = ["--quick", "--lengths", "256,2048", "--concurrency", "1", "--requests", "1"]
    args += ["--time-scale", "0", "--max-tokens", "4", "--out", str(tmp_path), "--name", "smoke"]
    assert long_context.main(args) == 0
    result = read_result(tmp_path, "smoke")
    assert [row["length"] for row in result["rows"]] == [256, 2048]
    for row in result["rows"]:
        for target in long_context.TARGETS:
            assert row[target]["ok"] == 1
            assert row[target]["mean_prompt_tokens"] >= row["length"] * 0.9
        assert row["added_ttft_p50_ms"] is not None


def test_routing_quick_run_reports_hit_rates_from_the_replicas_usage(tmp_path: Path) -> None:
    args = ["--quick", "--policies", "cache_aware,round_robin", "--groups", "2"]
    args += ["--per-group", "2", "--turns", "2", "--system-tokens", "256", "--concurrency", "2"]
    args += ["--time-scale", "0", "--out", str(tmp_path), "--name", "smoke"]
    assert routing.main(args) == 0
    result = read_result(tmp_path, "smoke")
    assert [r["policy"] for r in result["results"]] == ["cache_aware", "round_robin"]
    for r in result["results"]:
        assert r["ok"] == 2 * 2 * 2
        assert sum(r["requests_per_replica"]) >= r["ok"]
        # Second turns resend the first turn's history: some prompt tokens must be cached.
        assert 0 < r["cache_hit_rate"] < 1
