"""benchmarks/limits.py runs end to end, briefly, and writes its results (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import limits

pytestmark = pytest.mark.redis


def test_the_limits_benchmark_writes_each_run_and_holds_the_shares(tmp_path: Path) -> None:
    args = ["--quick", "--admissions", "50", "--minute-s", "1", "--cut-s", "3", "--clients", "2"]
    assert limits.main([*args, "--out", str(tmp_path), "--name", "smoke"]) == 0
    for suffix in (".md", ".png"):
        assert (tmp_path / f"smoke{suffix}").stat().st_size > 0
    result = json.loads((tmp_path / "smoke.json").read_text())
    assert set(result["latency"]["rows"]) == {"local", "redis", "redis_far"}
    assert all(row["admit_ms"]["count"] == 50 for row in result["latency"]["rows"].values())
    assert all(w["total"] <= limits.RPM for w in result["edges"]["windows"])
    outage = result["outage"]
    inside = [w for w in outage["rpm_windows"] if w["window"] in outage["windows_inside_cut"]]
    assert inside
    assert all(max(w["per_edge"]) <= outage["share_per_edge"] for w in inside)
    assert outage["errors"] == {}
    assert outage["recovery"]["reachable_after_s"] is not None
