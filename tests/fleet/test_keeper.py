"""`fleet sync --watch` keeps plain clusters warm: what is missing or stopped is launched again
where it ran, and an UP cluster whose SGLang stopped answering (a real simulator, stopped or
failing its health check) is restarted in place."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from structlog.testing import capture_logs

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.skypilot_double import SkyPilotDouble, cluster_payload
from warmgate.backends.fleet.discovery import cluster_backends
from warmgate.backends.fleet.keeper import HealthProbe, Keeper
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.naming import ClusterName
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.backends.fleet.sync import Syncer
from warmgate.backends.sim import SimCluster, SimConfig

SECRETS = {"HF_TOKEN": "hf_canary_31", "SGLANG_API_KEY": "sk_canary_31"}


def keeper(double: SkyPilotDouble, keep: dict[str, int] | None = None) -> Keeper:
    fleet = SkyPilot(double)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    return Keeper(fleet, lineup, SECRETS, keep=keep or {})


def tend(keep: Keeper, double: SkyPilotDouble) -> list[str]:
    return keep.tend(keep.sky.clusters())


def test_a_kept_cluster_that_does_not_exist_is_launched_with_its_secrets_and_no_autostop(
    sky: ModuleType,
) -> None:
    double = SkyPilotDouble(sky, clusters=[cluster_payload("wg-qwen3-32b-c1")])
    launched = tend(keeper(double, {"qwen3-32b": 2}), double)
    assert launched == ["wg-qwen3-32b-c2"]
    ((name, task),) = double.launched
    assert name == "wg-qwen3-32b-c2"
    assert {k: v.get_secret_value() for k, v in task.secrets.items()} == SECRETS
    assert all(r.autostop_config.enabled is False for r in task.resources)


def test_a_cluster_seen_up_and_then_gone_or_stopped_is_launched_again(sky: ModuleType) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[cluster_payload("wg-mistral-7b-instruct-c1"), cluster_payload("wg-qwen3-32b-c1")],
    )
    keep = keeper(double)
    assert tend(keep, double) == []
    double.clusters = [cluster_payload("wg-qwen3-32b-c1", "STOPPED")]  # mistral preempted away
    assert tend(keep, double) == ["wg-mistral-7b-instruct-c1", "wg-qwen3-32b-c1"]


def test_clusters_being_launched_and_clusters_not_ours_are_left_alone(sky: ModuleType) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[
            cluster_payload("wg-qwen3-32b-c1", "INIT"),
            cluster_payload("notebook-alice", "STOPPED"),
            cluster_payload("wg-qwen3-32b-3", "STOPPED"),  # a SkyServe replica: SkyServe heals it
        ],
    )
    assert tend(keeper(double, {"qwen3-32b": 1}), double) == []
    assert double.launched == []


def test_a_relaunch_still_running_is_not_started_twice_and_a_failed_one_is_retried(
    sky: ModuleType,
) -> None:
    double = SkyPilotDouble(sky, clusters=[])
    keep = keeper(double, {"whisper-large-v3": 1})
    assert tend(keep, double) == ["wg-whisper-large-v3-c1"]
    assert tend(keep, double) == []  # the launch request is still RUNNING on the API server
    (request_id,) = keep.pending.values()
    double.request_states[request_id] = "FAILED"  # e.g. no capacity anywhere
    assert tend(keep, double) == ["wg-whisper-large-v3-c1"]
    assert len(double.launched) == 2


def test_a_relaunch_without_the_secrets_is_skipped_and_logged_without_values(
    sky: ModuleType,
) -> None:
    double = SkyPilotDouble(sky, clusters=[])
    fleet = SkyPilot(double)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    keep = Keeper(fleet, lineup, {"HF_TOKEN": "hf_canary_31"}, keep={"qwen3-32b": 1})
    with capture_logs() as logs:
        assert keep.tend(fleet.clusters()) == []
    assert double.launched == []
    ((entry,),) = [[e for e in logs if e["event"] == "relaunch_impossible"]]
    assert "SGLANG_API_KEY" in entry["error"]
    assert "hf_canary_31" not in repr(logs)


def test_a_cluster_is_launched_again_where_it_last_ran_and_a_new_one_where_told(
    sky: ModuleType,
) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[
            cluster_payload("wg-qwen3-32b-c1", cloud="RunPod", region="US"),
            cluster_payload("wg-mistral-7b-instruct-c1", cloud="Lambda", region="europe-central-1"),
        ],
    )
    fleet = SkyPilot(double)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    keep = Keeper(fleet, lineup, SECRETS, keep={"whisper-large-v3": 1}, infra="lambda/us-east-1")
    assert keep.tend(fleet.clusters()) == ["wg-whisper-large-v3-c1"]  # never seen: `infra`
    # Both seen UP; then one is preempted away and the other stopped.
    double.clusters = [
        cluster_payload("wg-mistral-7b-instruct-c1", "STOPPED", cloud="Lambda",
                        region="europe-central-1"),
    ]  # fmt: skip
    assert keep.tend(fleet.clusters()) == ["wg-mistral-7b-instruct-c1", "wg-qwen3-32b-c1"]
    placed = {
        name: {(str(r.cloud), r.region) for r in task.resources} for name, task in double.launched
    }
    assert placed == {
        "wg-whisper-large-v3-c1": {("Lambda", "us-east-1")},
        "wg-mistral-7b-instruct-c1": {("Lambda", "europe-central-1")},
        "wg-qwen3-32b-c1": {("RunPod", "US")},
    }


@pytest.fixture
def replicas() -> Iterator[list[SimCluster]]:
    """Two SGLang simulators on loopback, each the SGLang of one plain cluster."""
    config = SimConfig(model="Qwen/Qwen3-32B", served_model_name="qwen3-32b", time_scale=0.0)
    clusters = [SimCluster(config).start_in_thread() for _ in range(2)]
    try:
        yield clusters
    finally:
        for cluster in clusters:
            cluster.stop()


def test_an_up_cluster_whose_sglang_stops_answering_is_restarted_in_place(
    sky: ModuleType, tmp_path: Path, replicas: list[SimCluster]
) -> None:
    names = ["wg-qwen3-32b-c1", "wg-qwen3-32b-c2"]
    double = SkyPilotDouble(
        sky,
        clusters=[cluster_payload(name) for name in names],
        addresses={
            name: cluster.urls[0].removeprefix("http://")
            for name, cluster in zip(names, replicas, strict=True)
        },
    )
    fleet = SkyPilot(double)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    probe = HealthProbe(timeout_s=10)
    keep = Keeper(fleet, lineup, SECRETS, probe=probe, unhealthy_after=2)
    sync = Syncer(fleet, lineup, tmp_path / "backends.json", "SGLANG_API_KEY",
                  clock=lambda: datetime.now(UTC), keeper=keep)  # fmt: skip
    try:
        sync.run_once()  # both answer /health
        # The VMs stay UP, but c1's SGLang is stuck (its health check fails) and c2's is gone.
        replicas[0].set_faults_from_thread(0, unhealthy=True)
        replicas[1].stop()
        with capture_logs() as logs:
            sync.run_once()  # one failed probe each: not yet
            assert double.executed == []
            sync.run_once()  # the second in a row: restarted where they are
        assert double.cancelled == names  # a hung SGLang holds its GPUs: its job goes first
        assert [(name, {k: v.get_secret_value() for k, v in task.secrets.items()})
                for name, task in double.executed] == [(n, SECRETS) for n in names]  # fmt: skip
        assert double.launched == []
        assert [e["cluster"] for e in logs if e["event"] == "cluster_restarted"] == names
        assert "sk_canary_31" not in repr(logs)

        sync.run_once()  # the restarts are still running on the API server: left alone
        assert len(double.executed) == 2
        for request_id in keep.pending.values():
            double.request_states[request_id] = "SUCCEEDED"
        replicas[0].set_faults_from_thread(0, unhealthy=False)  # c1 answers again
        sync.run_once()
        assert keep.failures == {ClusterName("qwen3-32b", 2): 1}  # c2 still silent
        assert len(double.executed) == 2
    finally:
        probe.close()


def test_one_failed_probe_between_passes_restarts_nothing(
    sky: ModuleType, replicas: list[SimCluster]
) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[cluster_payload("wg-qwen3-32b-c1")],
        addresses={"wg-qwen3-32b-c1": replicas[0].urls[0].removeprefix("http://")},
    )
    fleet = SkyPilot(double)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    probe = HealthProbe(timeout_s=10)
    keep = Keeper(fleet, lineup, SECRETS, probe=probe, unhealthy_after=2)
    try:
        for unhealthy in (True, False, True, False):
            replicas[0].set_faults_from_thread(0, unhealthy=unhealthy)
            records = fleet.clusters()
            backends = cluster_backends(records, fleet.endpoint, lineup, "SGLANG_API_KEY")
            assert keep.tend(records, backends) == []
        assert double.executed == []
    finally:
        probe.close()
