"""SkyPilot's optimizer on each model task, offline: seeded catalogs, cloud checks faked.

The cloud checks are replaced the way SkyPilot's own suite does it (`enable_all_clouds` in
tests/common_test_fixtures.py patches `sky.check.get_cached_enabled_clouds_or_refresh` and
`sky.check.check_capability`), here with Lambda and RunPod enabled (catalogs in `catalogs/`).
Those are private functions of SkyPilot, which is why `skypilot==0.14.1` is pinned.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.lineup_facts import holds
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.skypilot import SkyPilot

MODEL_FILES = sorted(MODELS_DIR.glob("*.yaml"))

# The first preference some enabled cloud offers, on the cheapest cloud offering it. DeepSeek
# V3.2 needs one node of 8 H200 (RunPod) or 8 B200 (Lambda): 8 H100 cannot hold it.
EXPECTED_LAMBDA_RUNPOD = {
    "llama-3-3-70b-instruct": ("RunPod", "4x_H100-SXM_SECURE", "H100", 4),
    "qwen3-32b": ("RunPod", "2x_H100-SXM_SECURE", "H100", 2),
    "deepseek-r1-distill-llama-70b": ("RunPod", "4x_H100-SXM_SECURE", "H100", 4),
    "mistral-7b-instruct": ("RunPod", "1x_L40S_SECURE", "L40S", 1),
    "deepseek-v3-2": ("RunPod", "8x_H200-SXM_SECURE", "H200", 8),
    "qwen3-embedding-4b": ("RunPod", "1x_L4_SECURE", "L4", 1),
    "whisper-large-v3": ("RunPod", "1x_L4_SECURE", "L4", 1),
}
# With Lambda alone (the prices in sky/README.md's cost table).
EXPECTED_LAMBDA = {
    "llama-3-3-70b-instruct": ("Lambda", "gpu_4x_h100_sxm5", "H100", 4),
    "qwen3-32b": ("Lambda", "gpu_2x_h100_sxm5", "H100", 2),
    "deepseek-r1-distill-llama-70b": ("Lambda", "gpu_4x_h100_sxm5", "H100", 4),
    "mistral-7b-instruct": ("Lambda", "gpu_1x_a100_sxm4", "A100", 1),
    "deepseek-v3-2": ("Lambda", "gpu_8x_b200_sxm6", "B200", 8),
    "qwen3-embedding-4b": ("Lambda", "gpu_1x_a10", "A10", 1),
    "whisper-large-v3": ("Lambda", "gpu_1x_a10", "A10", 1),
}


def enable(sky: ModuleType, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    clouds = [sky.utils.registry.CLOUD_REGISTRY.from_str(name) for name in names]
    monkeypatch.setattr(sky.check, "get_cached_enabled_clouds_or_refresh", lambda *_, **__: clouds)
    monkeypatch.setattr(sky.check, "check_capability", lambda *_, **__: None)


@pytest.fixture
def lambda_only(sky: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    enable(sky, monkeypatch, "lambda")


@pytest.fixture
def lambda_and_runpod(sky: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    enable(sky, monkeypatch, "lambda", "runpod")


def optimize(sky: ModuleType, task: Any) -> Any:
    with sky.Dag() as dag:
        dag.add(task)
    sky.optimizer.Optimizer.optimize(dag, quiet=True)
    return dag.tasks[0].best_resources


def picked(sky: ModuleType, path: Path) -> tuple[tuple[str, str, str, int], int]:
    task = sky.Task.from_yaml(str(path))
    best = optimize(sky, task)
    ((accelerator, count),) = best.accelerators.items()
    return (str(best.cloud), best.instance_type, accelerator, int(count)), task.num_nodes


@pytest.mark.usefixtures("lambda_and_runpod")
@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_the_optimizer_picks_an_offered_accelerator_that_holds_the_model(
    sky: ModuleType, path: Path
) -> None:
    choice, nodes = picked(sky, path)
    assert choice == EXPECTED_LAMBDA_RUNPOD[path.stem]
    assert holds(path.stem, choice[2], choice[3], nodes)


@pytest.mark.usefixtures("lambda_only")
@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_on_one_cloud_the_optimizer_walks_down_the_list_to_what_it_offers(
    sky: ModuleType, path: Path
) -> None:
    choice, nodes = picked(sky, path)
    assert choice == EXPECTED_LAMBDA[path.stem]
    assert holds(path.stem, choice[2], choice[3], nodes)


@pytest.mark.usefixtures("lambda_only")
def test_a_region_without_the_first_choices_falls_back_along_the_preference_list(
    sky: ModuleType,
) -> None:
    # europe-central-1 in the seeded catalog has no H200 or H100 nodes, only B200s.
    fleet = SkyPilot(sky)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    secrets = {"HF_TOKEN": "hf_x", "SGLANG_API_KEY": "sk_x"}
    task = fleet.task(lineup.get("deepseek-v3-2"), environ=secrets, infra="lambda/europe-central-1")
    best = optimize(sky, task)
    assert (best.region, best.instance_type) == ("europe-central-1", "gpu_8x_b200_sxm6")
    assert holds("deepseek-v3-2", "B200", 8, task.num_nodes)


@pytest.mark.usefixtures("lambda_only")
def test_no_offered_accelerator_is_an_error_not_a_smaller_gpu(sky: ModuleType) -> None:
    fleet = SkyPilot(sky)
    lineup = Lineup.from_directory(MODELS_DIR, fleet.read_config)
    secrets = {"HF_TOKEN": "hf_x", "SGLANG_API_KEY": "sk_x"}
    # europe-central-1 offers A10s (24 GB: too small for Mistral's full context) and 8-GPU nodes.
    task = fleet.task(
        lineup.get("mistral-7b-instruct"), environ=secrets, infra="lambda/europe-central-1"
    )
    with pytest.raises(sky.exceptions.ResourcesUnavailableError):
        optimize(sky, task)
