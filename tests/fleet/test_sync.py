"""`fleet sync`: SkyPilot's status and serve-status results -> the backends document."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

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
from warmgate.backends.fleet.sync import Syncer, SyncRefusedError
from warmgate.backends.fleet.sync_state import read_state

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


def state_is_current(out: Path) -> bool:
    state = read_state(out)
    return state is not None and state.current


def test_sync_lists_up_clusters_and_ready_replicas_by_their_own_urls(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    written = syncer(double, out).run_once()
    # Clusters the operator launched are seen by a service account's sync too.
    assert double.status_all_users == [True]
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
            service="wg-qwen3-32b",
        ),
    )
    # Replicas are reached directly, never through the SkyServe load balancer's port; the
    # controller (same machine, its own port) is where edges report what they sent.
    assert "198.51.100.1:30002" not in out.read_text()
    assert written.controllers == {"wg-qwen3-32b": "http://198.51.100.1:20001"}
    assert state_is_current(out)


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
    sync.force = True  # every backend goes: more than the default share
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
    sync.max_drop_share = 1.0  # the test flips one of the two backends on and off
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backends.json", "backends.sync.json"]


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
    assert [entry["event"] for entry in logs][:1] == ["backends_document_kept"]
    assert read_document(out) is not None


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


def as_the_client_sees(sky: ModuleType, error: Exception) -> Exception:
    """An error as the SDK raises it: serialized by the API server, rebuilt by the client."""
    rebuilt: Exception = sky.exceptions.deserialize_exception(
        sky.exceptions.serialize_exception(error)
    )
    return rebuilt


def kept(out: Path) -> str:
    state = read_state(out)
    assert state is not None
    assert not state.current
    assert state.problem is not None
    return state.problem


def test_a_serve_controller_in_init_whose_ssh_check_failed_keeps_every_replica(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    sync = syncer(double, out)
    first = sync.run_once()
    # What `sky.serve.status` raises while the controller is INIT and unreachable over SSH
    # (backend_utils.is_controller_accessible), as the client rebuilds it.
    double.serve_status_error = as_the_client_sees(
        sky,
        sky.exceptions.ClusterNotUpError(
            "Failed to connect to serve controller, please try again later.",
            cluster_status=sky.ClusterStatus.INIT,
        ),
    )
    with capture_logs() as logs, pytest.raises(SyncRefusedError, match="INIT"):
        sync.run_once()
    assert read_document(out) == first
    assert "sky-serve:wg-qwen3-32b/1" in {b.source for b in first.backends}  # type: ignore[union-attr]
    assert "INIT" in kept(out)
    assert [e["event"] for e in logs] == ["backends_document_kept"]


def test_no_serve_controller_at_all_means_no_services(sky: ModuleType, tmp_path: Path) -> None:
    double = fleet_state(sky)
    double.services = []
    double.serve_status_error = as_the_client_sees(
        sky, sky.exceptions.ClusterNotUpError("No live services.")
    )
    written = syncer(double, tmp_path / "backends.json").run_once()
    assert written is not None
    assert [b.source for b in written.backends] == ["sky-cluster:wg-mistral-7b-instruct-c1"]


def test_an_api_server_that_is_down_keeps_the_document_and_says_so(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    sync = syncer(double, out)
    first = sync.run_once()
    double.status_error = sky.exceptions.ApiServerConnectionError("http://127.0.0.1:46580")
    with pytest.raises(SyncRefusedError, match="ApiServerConnectionError"):
        sync.run_once()
    assert read_document(out) == first
    assert "Could not connect to SkyPilot API server" in kept(out)
    # An endpoint lookup that fails the same way is no cluster gone either.
    double.status_error = None
    double.addresses = {}
    double.endpoints = lambda *_: (_ for _ in ()).throw(  # type: ignore[method-assign]
        sky.exceptions.ApiServerConnectionError("http://127.0.0.1:46580")
    )
    with pytest.raises(SyncRefusedError):
        sync.run_once()
    assert read_document(out) == first


def test_a_pass_that_would_drop_every_backend_is_refused_unless_forced(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    sync = syncer(double, out)
    first = sync.run_once()
    assert first is not None
    assert len(first.backends) == 2
    double.clusters = []
    double.services = []
    with pytest.raises(SyncRefusedError, match="drop 2 of 2"):
        sync.run_once()
    assert read_document(out) == first
    assert "--force" in kept(out)

    sync.force = True
    emptied = sync.run_once()
    assert emptied is not None
    assert emptied.backends == ()
    state = read_state(out)
    assert state is not None
    assert state.current


def test_a_drop_within_the_allowed_share_goes_through(sky: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "backends.json"
    double = fleet_state(sky)
    double.services[0]["replica_info"][1] = replica_payload(2, "READY", "http://203.0.113.8:30000")
    sync = syncer(double, out)
    sync.max_drop_share = 0.34
    sync.run_once()
    double.clusters[0]["status"] = "STOPPED"  # 1 of 3 backends
    changed = sync.run_once()
    assert changed is not None
    assert len(changed.backends) == 2


def rolling(replicas: list[dict[str, Any]], active: list[int]) -> dict[str, Any]:
    return service_payload(
        "wg-qwen3-32b-us-east-1",
        "READY",
        "http://198.51.100.1:30002",
        replicas,
        active_versions=active,
    )


def test_during_an_update_only_the_active_versions_ready_replicas_are_published(
    sky: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "backends.json"
    old, new = {"warmgate-key-env": "sglang_api_key"}, {"warmgate-key-env": "sglang_api_key_2"}
    double = SkyPilotDouble(
        sky,
        services=[
            rolling(
                [
                    replica_payload(1, "READY", "http://203.0.113.1:30000", labels=old),
                    replica_payload(2, "READY", "http://203.0.113.2:30000", labels=old),
                ],
                active=[1],
            )
        ],
    )
    sync = syncer(double, out)
    sync.run_once()

    # Rolling update to version 2: one new replica READY (SkyServe makes both versions active
    # and sends traffic to both), one STARTING, one old replica drained (SHUTTING_DOWN).
    double.services = [
        rolling(
            [
                replica_payload(1, "SHUTTING_DOWN", "http://203.0.113.1:30000", labels=old),
                replica_payload(2, "READY", "http://203.0.113.2:30000", labels=old),
                replica_payload(3, "READY", "http://203.0.113.3:30000", version=2, labels=new),
                replica_payload(4, "STARTING", None, version=2, labels=new),
            ],
            active=[1, 2],
        )
    ]
    during = sync.run_once()
    assert during is not None
    assert [(b.url, b.api_key_env, b.region, b.service) for b in during.backends] == [
        ("http://203.0.113.2:30000", "SGLANG_API_KEY", "us-east-1", "wg-qwen3-32b-us-east-1"),
        ("http://203.0.113.3:30000", "SGLANG_API_KEY_2", "us-east-1", "wg-qwen3-32b-us-east-1"),
    ]

    # Blue-green instead: version 2 is READY but SkyServe keeps version 1 the only active one
    # until enough new replicas are up; edges must not reach version 2 before it does.
    double.services = [
        rolling(
            [
                replica_payload(2, "READY", "http://203.0.113.2:30000", labels=old),
                replica_payload(3, "READY", "http://203.0.113.3:30000", version=2, labels=new),
            ],
            active=[1],
        )
    ]
    sync.max_drop_share = 0.5
    blue = sync.run_once()
    assert blue is not None
    assert [b.url for b in blue.backends] == ["http://203.0.113.2:30000"]


def test_every_backend_carries_its_region_even_when_skypilot_leaves_it_out(
    sky: ModuleType, tmp_path: Path
) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[cluster_payload("wg-qwen3-32b-c1", region="US", cloud="RunPod")],
        addresses={"wg-qwen3-32b-c1": "192.0.2.5:30000"},
        services=[
            service_payload(
                "wg-qwen3-32b-eu-central-1",
                "READY",
                "http://198.51.100.1:30002",
                [replica_payload(1, "READY", "http://203.0.113.4:30000", region=None)],
            )
        ],
    )
    written = syncer(double, tmp_path / "backends.json").run_once()
    assert written is not None
    assert sorted((b.source, b.region) for b in written.backends) == [
        ("sky-cluster:wg-qwen3-32b-c1", "us"),
        ("sky-serve:wg-qwen3-32b-eu-central-1/1", "eu-central-1"),
    ]


def test_edges_can_be_pointed_at_a_forward_to_the_controllers(
    sky: ModuleType, tmp_path: Path
) -> None:
    sync = syncer(fleet_state(sky), tmp_path / "backends.json")
    sync.controller_host = "10.8.0.2"
    written = sync.run_once()
    assert written is not None
    assert written.controllers == {"wg-qwen3-32b": "http://10.8.0.2:20001"}
