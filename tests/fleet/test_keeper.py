"""`fleet sync --watch` keeps plain clusters warm: what is missing or stopped is re-launched."""

from __future__ import annotations

from types import ModuleType

from structlog.testing import capture_logs

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.skypilot_double import SkyPilotDouble, cluster_payload
from warmgate.backends.fleet.keeper import Keeper
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.skypilot import SkyPilot

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
