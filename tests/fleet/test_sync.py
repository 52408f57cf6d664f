"""`fleet sync`: SkyPilot's status and serve-status results -> the backends document."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import msgspec
import pytest
from structlog.testing import capture_logs

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.skypilot_double import (
    SkyPilotDouble,
    cluster_payload,
    replica_payload,
    service_payload,
)
from warmgate.backends.fleet.document import FleetBackend, decode_document, read_document
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.backends.fleet.sync import Syncer

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = "sk-live-canary-9c1e"


def fleet_state(sky: ModuleType) -> SkyPilotDouble:
    return SkyPilotDouble(
        sky,
        clusters=[
            cluster_payload("wg-mistral-7b-instruct-c1", accelerators="{'A10': 1}"),
            cluster_payload("wg-mistral-7b-instruct-c2", "STOPPED"),
            cluster_payload("wg-llama-3-3-70b-instruct-c1", "INIT"),
            cluster_payload("wg-qwen3-32b-1"),  # a SkyServe replica cluster, not ours to list
            cluster_payload("wg-edge-us-east-1", accelerators=None),
            cluster_payload("notebook-alice"),
        ],
        addresses={
            "wg-mistral-7b-instruct-c1": "192.0.2.10:30000",
            "wg-qwen3-32b-1": "203.0.113.7:30000",
            "notebook-alice": "192.0.2.99:30000",
        },
        services=[
            service_payload(
                "wg-qwen3-32b",
                "READY",
                "http://198.51.100.1:30002",
                [
                    replica_payload(1, "READY", "http://203.0.113.7:30000"),
                    replica_payload(2, "STARTING", None),
                    replica_payload(3, "NOT_READY", "http://203.0.113.9:30000"),
                ],
            ),
            service_payload(
                "other-team-llm",
                "READY",
                "http://198.51.100.2:30002",
                [replica_payload(1, "READY", "http://203.0.113.50:8000")],
            ),
        ],
    )


def syncer(double: SkyPilotDouble, out: Path) -> Syncer:
    fleet = SkyPilot(double)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    return Syncer(fleet, lineup, out, "SGLANG_API_KEY", clock=lambda: NOW)


def test_sync_lists_up_clusters_and_ready_replicas_by_their_own_urls(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    written = syncer(fleet_state(sky), out).run_once()
    assert written is not None
    assert read_document(out) == written
    assert written.version == 1
    assert written.generated_at == "2026-11-28T12:00:00Z"
    assert written.backends == (
        FleetBackend(
            model="mistral-7b-instruct",
            url="http://192.0.2.10:30000",
            api_key_env="SGLANG_API_KEY",
            cloud="Lambda",
            region="us-east-1",
            accelerators="A10:1",
            source="sky-cluster:wg-mistral-7b-instruct-c1",
        ),
        FleetBackend(
            model="qwen3-32b",
            url="http://203.0.113.7:30000",
            api_key_env="SGLANG_API_KEY",
            cloud="Lambda",
            region="us-east-1",
            accelerators="H100:2",
            source="sky-serve:wg-qwen3-32b/1",
        ),
    )
    assert b"198.51.100.1" not in out.read_bytes()  # never the SkyServe load balancer


def test_an_unchanged_fleet_is_not_rewritten_and_a_change_bumps_the_version(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    sync = syncer(double, out)
    assert sync.run_once() is not None
    before = out.stat().st_mtime_ns, out.read_bytes()
    assert sync.run_once() is None
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before

    double.services[0]["replica_info"][1] = replica_payload(2, "READY", "http://203.0.113.8:30000")
    changed = sync.run_once()
    assert changed is not None
    assert changed.version == 2
    assert "sky-serve:wg-qwen3-32b/2" in {b.source for b in changed.backends}


def test_a_replica_that_leaves_ready_leaves_the_document(sky: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    sync = syncer(double, out)
    sync.run_once()
    double.services[0]["replica_info"][0]["status"] = "NOT_READY"
    double.clusters[0]["status"] = "STOPPED"
    changed = sync.run_once()
    assert changed is not None
    assert changed.backends == ()


def test_the_document_names_the_key_variable_and_no_secret_reaches_it_or_the_logs(
    sky: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SGLANG_API_KEY", SECRET)
    out = tmp_path / "backends.json"
    with capture_logs() as logs:
        syncer(fleet_state(sky), out).run_once()
    document = decode_document(out.read_bytes())
    assert {b.api_key_env for b in document.backends} == {"SGLANG_API_KEY"}
    assert SECRET not in out.read_text()
    assert logs
    assert SECRET not in repr(logs)


def test_readers_only_ever_see_whole_documents(sky: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    sync = syncer(double, out)
    sync.run_once()
    done = threading.Event()
    seen: list[int] = []
    errors: list[Exception] = []

    def read_until_done() -> None:
        while not done.is_set():
            try:
                seen.append(decode_document(out.read_bytes()).version)
            except (msgspec.DecodeError, OSError) as exc:
                errors.append(exc)

    reader = threading.Thread(target=read_until_done)
    reader.start()
    for step in range(60):
        double.clusters[0]["status"] = "UP" if step % 2 else "STOPPED"
        sync.run_once()
    done.set()
    reader.join()
    assert errors == []
    assert seen == sorted(seen)
    assert seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backends.json"]


def test_watch_outlives_an_api_server_that_is_down_and_syncs_on_the_next_pass(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    double.status_error = ConnectionError("SkyPilot API server at 127.0.0.1:46580 is not up")
    double.stop_after_status_calls = 2
    with capture_logs() as logs:
        syncer(double, out).watch(0.001, double.stop)
    assert double.status_calls == 2
    assert [entry["event"] for entry in logs][:1] == ["sync_failed"]
    assert read_document(out) is not None


def test_a_failed_serve_status_writes_nothing_rather_than_a_document_without_replicas(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    sync = syncer(double, out)
    first = sync.run_once()
    # What SkyPilot 0.14.1's API server answers when its network check fails.
    double.serve_status_error = RuntimeError(
        "Failed to refresh services status due to network error."
    )
    with pytest.raises(RuntimeError):
        sync.run_once()
    assert read_document(out) == first


def test_a_multi_node_backend_says_how_many_nodes_its_accelerators_span(
    sky: ModuleType, tmp_path: Path
) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[cluster_payload("wg-deepseek-v3-2-c1", accelerators="{'H100': 8}", nodes=2)],
        addresses={"wg-deepseek-v3-2-c1": "192.0.2.20:30000"},
        services=[
            service_payload(
                "wg-deepseek-v3-2",
                "READY",
                "http://198.51.100.1:30002",
                [replica_payload(1, "READY", "http://203.0.113.20:30000", gpus="B200:8", nodes=2)],
            )
        ],
    )
    written = syncer(double, tmp_path / "backends.json").run_once()
    assert written is not None
    assert [(b.model, b.accelerators) for b in written.backends] == [
        ("deepseek-v3.2", "2x(H100:8)"),
        ("deepseek-v3.2", "2x(B200:8)"),
    ]
