"""Each benchmark runs end to end in a few seconds and writes its results (no timing asserted).

The benchmarks start real processes (the canned upstream, the simulator, the bare relay,
`warmgate serve`) on loopback ports and drive them with the load generator in its own process.
Each run counts its cells on stderr, prints the paths it wrote last, marks a quick run's
verdicts as indicative, and gives each figure's spread over rounds; redrawing the report from
the run's JSON gives the same report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks import (
    edges,
    instructions,
    long_context,
    long_context_results,
    overhead,
    overhead_results,
    routing,
    summary,
    wire_decode,
)
from benchmarks.loadgen import Workload, chat_body, run_subprocess
from benchmarks.processes import free_port
from benchmarks.upstreams import canned_process


def read_result(out: Path, name: str) -> dict[str, Any]:
    for suffix in (".md", ".png"):
        assert (out / f"{name}{suffix}").stat().st_size > 0
    result: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    return result


def check_run_output(
    capsys: pytest.CaptureFixture[str], out: Path, name: str, suffixes: str = ".json .md .png"
) -> None:
    """The cell counter reached N of N, and the last lines name the files written."""
    captured = capsys.readouterr()
    counted = re.findall(r"cell (\d+)/(\d+) ", captured.err)
    assert counted, captured.err
    assert [int(k) for k, _ in counted] == list(range(1, int(counted[0][1]) + 1))
    assert re.search(rf"{int(counted[0][1])}/{int(counted[0][1])} cells in \d+:\d\d", captured.err)
    written = [f"  {out / name}{suffix}" for suffix in suffixes.split()]
    assert captured.out.rstrip().splitlines()[-len(written) - 1 :] == ["Wrote:", *written]


def check_quick_verdicts(result: dict[str, Any], out: Path, name: str) -> None:
    """Every figure with a goal reads "(indicative)", and its median lies within its spread."""
    report = (out / f"{name}.md").read_text()
    assert report.startswith("**Quick run: the verdicts are indicative.**")
    for found in result["goals"]:
        assert found["min"] <= found["measured"] <= found["max"]
        if found["met"] is not None:
            verdict = "yes" if found["met"] else "**no**"
            assert f"| {verdict} (indicative) |" in report


def check_redraw_matches(out: Path, name: str) -> None:
    """Redrawing from the JSON alone gives the report the run wrote."""
    written = (out / f"{name}.md").read_text()
    assert out / f"{name}.md" in summary.redraw(out)
    assert (out / f"{name}.md").read_text() == written


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


def test_overhead_quick_run_writes_rows_for_every_target_and_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--quick", "--targets", "direct,bare,warmgate", "--concurrency", "1"]
    args += ["--rounds", "2", "--duration", "0.3", "--warmup", "5", "--inflight", "10"]
    args += ["--hold-ms", "200", "--out", str(tmp_path), "--name", "smoke"]
    assert overhead.main(args) == 0
    check_run_output(capsys, tmp_path, "smoke")
    result = read_result(tmp_path, "smoke")
    cells = {(row["target"], row["mode"]) for row in result["rows"]}
    assert cells == {(t, m) for t in ("direct", "bare", "warmgate") for m in overhead_results.MODES}
    assert all(row["errors"] == 0 and row["req_per_s"] > 0 for row in result["rows"])
    assert all(row["rounds"] == 2 for row in result["rows"])
    gateway_rows = [row for row in result["rows"] if row["target"] == "warmgate"]
    assert all(row["server_cpu_ms_per_req"] > 0 for row in gateway_rows)
    for row in gateway_rows:
        low, high = row["spread"]["req_per_s"]
        assert low <= row["req_per_s"] <= high
    assert {f["goal"] for f in result["goals"]} >= {
        "Warmgate added p50 (ms), c=1, non-stream",
        "Warmgate added p50 (ms), c=1, stream",
        "Warmgate req/s ÷ bare relay's, c=1, stream",
    }
    check_quick_verdicts(result, tmp_path, "smoke")
    assert result["memory"]["targets"]["warmgate"]["ok"] == 10
    assert result["server_cpus"] is None or result["server_cpus"] != result["load_cpus"]
    check_redraw_matches(tmp_path, "smoke")


def test_long_context_quick_run_reports_added_ttft_per_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--quick", "--lengths", "256,2048", "--concurrency", "1", "--requests", "1"]
    args += ["--rounds", "2", "--time-scale", "0", "--max-tokens", "4"]
    args += ["--out", str(tmp_path), "--name", "smoke"]
    assert long_context.main(args) == 0
    check_run_output(capsys, tmp_path, "smoke")
    result = read_result(tmp_path, "smoke")
    assert [row["length"] for row in result["rows"]] == [256, 2048]
    for row in result["rows"]:
        for target in long_context_results.TARGETS:
            assert row[target]["ok"] == 2  # one request per round
            assert row[target]["mean_prompt_tokens"] >= row["length"] * 0.9
        assert row["added_ttft_p50_ms"] is not None
        assert len(row["rounds"]) == 2
    assert [f["goal"] for f in result["goals"]] == [
        "TTFT Warmgate adds, p50 (ms), 256 prompt tokens, c=1",
        "TTFT Warmgate adds, p50 (ms), 2,048 prompt tokens, c=1",
    ]
    check_quick_verdicts(result, tmp_path, "smoke")
    check_redraw_matches(tmp_path, "smoke")


def test_routing_quick_run_reports_hit_rates_from_the_replicas_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--quick", "--policies", "cache_aware,round_robin", "--groups", "2", "--rounds", "2"]
    args += ["--per-group", "2", "--turns", "2", "--system-tokens", "256", "--concurrency", "2"]
    args += ["--time-scale", "0", "--out", str(tmp_path), "--name", "smoke"]
    assert routing.main(args) == 0
    check_run_output(capsys, tmp_path, "smoke")
    result = read_result(tmp_path, "smoke")
    assert [r["policy"] for r in result["results"]] == ["cache_aware", "round_robin"]
    # Round 2 starts with the other policy: the order rotates.
    assert [(r["round"], r["policy"]) for r in result["runs"]] == [
        (0, "cache_aware"), (0, "round_robin"), (1, "round_robin"), (1, "cache_aware"),
    ]  # fmt: skip
    for r in result["results"]:
        assert r["ok"] == 2 * 2 * 2 * 2  # groups x conversations x turns x rounds
        assert sum(r["requests_per_replica"]) >= r["ok"]
        # Second turns resend the first turn's history: some prompt tokens must be cached.
        assert 0 < r["cache_hit_rate"] < 1
    check_quick_verdicts(result, tmp_path, "smoke")
    check_redraw_matches(tmp_path, "smoke")


def test_edges_quick_run_counts_cached_follow_ups_and_requests_in_region(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--quick", "--policies", "consistent_hash", "--edges", "2", "--replicas", "2"]
    args += ["--conversations", "3", "--turns", "2", "--system-tokens", "256"]
    args += ["--time-scale", "0", "--out", str(tmp_path), "--name", "smoke"]
    assert edges.main(args) == 0
    check_run_output(capsys, tmp_path, "smoke")
    result = read_result(tmp_path, "smoke")
    assert [r["label"] for r in result["results"]] == [
        "consistent_hash, 1 edge", "consistent_hash, 2 edges",
        "regions: [server] region set", "regions: [server] region unset",
    ]  # fmt: skip
    for r in result["results"]:
        assert r["errors"] == 0
        assert r["follow_ups"] == 3  # one second turn per conversation
        assert sum(r["requests_per_replica"]) >= 6
    regional = result["results"][2]
    assert regional["local_share"] == 1.0  # with no delay either, the edges stay home
    check_quick_verdicts(result, tmp_path, "smoke")
    check_redraw_matches(tmp_path, "smoke")


def test_wire_decode_quick_run_measures_each_operation_on_each_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert wire_decode.main(["--quick", "--out", str(tmp_path), "--name", "smoke"]) == 0
    check_run_output(capsys, tmp_path, "smoke", ".json .md")
    result = json.loads((tmp_path / "smoke.json").read_text())
    assert [(r["body"], r["operation"]) for r in result["rows"]] == [
        (body, operation)
        for body in ("typical", "long")
        for operation in ("decode + validate", "upstream body", "rewrite: include_usage",
                          "rewrite: model + include_usage")
    ]  # fmt: skip
    assert all(r["us_per_call"] > 0 for r in result["rows"])
    assert (tmp_path / "smoke.md").read_text().startswith("**Quick run: indicative.**")
    check_redraw_matches(tmp_path, "smoke")


def test_instructions_counts_each_mode_under_callgrind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--requests", "3", "--warmup", "1", "--out", str(tmp_path), "--name", "smoke"]
    assert instructions.main(argv) == 0
    check_run_output(capsys, tmp_path, "smoke", ".json .md")
    result = json.loads((tmp_path / "smoke.json").read_text())
    figures = result["instructions_per_request"]
    assert set(figures) == set(instructions.MODES)
    assert len(figures) == 4  # with and without a kept-alive connection, streamed or not
    # A request through the gateway is hundreds of thousands of instructions, not zero: the
    # counting window held the requests.
    assert all(figure > 100_000 for figure in figures.values())
