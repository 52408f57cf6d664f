"""SkyPilot's optimizer on each model task, offline: seeded catalogs, cloud checks faked.

The cloud checks are replaced the way SkyPilot's own suite does it (`enable_all_clouds` in
tests/common_test_fixtures.py patches `sky.check.get_cached_enabled_clouds_or_refresh` and
`sky.check.check_capability`), here with Lambda, RunPod and AWS enabled (catalogs in
`catalogs/`). Those are private functions of SkyPilot, which is why `skypilot==0.14.1` is pinned.

The AWS rows are copied from SkyPilot's own v8 catalog (on-demand prices as AWS lists them):
the GPU instances AWS sells, most of them 8-GPU only (p4de 8xA100-80GB, p5 8xH100, p5en
8xH200, p6-b200 8xB200; p5e 8xH200 has no on-demand price: capacity blocks only), and the
smaller g6 L4, g5 A10G, g6e L40S and p5.4xlarge H100 shapes. SkyPilot's own suite replaces
the account's availability-zone mapping with `tests/default_aws_az_mappings.csv`; here the
same rows are the catalog's `aws/az_mappings-default.csv`, the file SkyPilot itself reads when
no AWS identity is configured.
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
# AWS sells none of the 2- and 4-GPU H100/H200/A100-80GB/B200 shapes the lists start with:
# the optimizer walks down each list to the first shape AWS offers.
EXPECTED_AWS = {
    "llama-3-3-70b-instruct": ("AWS", "p5.48xlarge", "H100", 8),
    "qwen3-32b": ("AWS", "g6e.12xlarge", "L40S", 4),
    "deepseek-r1-distill-llama-70b": ("AWS", "p5.48xlarge", "H100", 8),
    "mistral-7b-instruct": ("AWS", "g6e.xlarge", "L40S", 1),
    "deepseek-v3-2": ("AWS", "p5en.48xlarge", "H200", 8),
    "qwen3-embedding-4b": ("AWS", "g6.xlarge", "L4", 1),
    "whisper-large-v3": ("AWS", "g6.xlarge", "L4", 1),
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


@pytest.fixture
def aws_only(sky: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    enable(sky, monkeypatch, "aws")


@pytest.fixture
def three_clouds(sky: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    enable(sky, monkeypatch, "lambda", "runpod", "aws")


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


@pytest.mark.usefixtures("aws_only")
@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_on_aws_the_optimizer_picks_the_first_listed_shape_aws_sells_and_it_holds_the_model(
    sky: ModuleType, path: Path
) -> None:
    choice, nodes = picked(sky, path)
    assert choice == EXPECTED_AWS[path.stem]
    assert holds(path.stem, choice[2], choice[3], nodes)


@pytest.mark.usefixtures("three_clouds")
@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_with_aws_enabled_too_the_optimizer_still_takes_the_cheapest_offer_of_the_first_choice(
    sky: ModuleType, path: Path
) -> None:
    # Every AWS offer of a model's first available choice costs more than RunPod's.
    choice, nodes = picked(sky, path)
    assert choice == EXPECTED_LAMBDA_RUNPOD[path.stem]
    assert holds(path.stem, choice[2], choice[3], nodes)


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_every_aws_instance_a_model_list_matches_holds_it_and_every_list_matches_one(
    sky: ModuleType, path: Path
) -> None:
    """The fit rule on the shapes AWS sells: whatever AWS instance a listed choice resolves to
    in SkyPilot's catalog holds the model, and each list reaches at least one of them."""
    task = sky.Task.from_yaml(str(path))
    matched = []
    for resources in task.resources:
        ((accelerator, count),) = resources.accelerators.items()
        instances, _ = sky.catalog.get_instance_type_for_accelerator(
            accelerator, int(count), clouds="aws"
        )
        for instance in instances or ():
            matched.append(instance)
            assert holds(path.stem, accelerator, int(count), task.num_nodes), instance
    assert matched, f"{path.stem}: no listed shape is sold on AWS"


@pytest.mark.usefixtures("aws_only")
def test_where_aws_has_no_h100_nodes_the_70b_models_land_on_8_a100_80gb(sky: ModuleType) -> None:
    # ap-southeast-1 sells p4de.24xlarge (8xA100-80GB) but no p5.48xlarge.
    task = sky.Task.from_yaml(str(MODELS_DIR / "llama-3-3-70b-instruct.yaml"))
    task.set_resources_override({"infra": "aws/ap-southeast-1"})
    best = optimize(sky, task)
    assert (best.region, best.instance_type) == ("ap-southeast-1", "p4de.24xlarge")
    assert holds("llama-3-3-70b-instruct", "A100-80GB", 8)


@pytest.mark.usefixtures("aws_only")
def test_deepseek_v3_2_on_aws_takes_an_on_demand_h200_node_never_a_capacity_block_one(
    sky: ModuleType,
) -> None:
    # us-east-2 lists p5e.48xlarge (8xH200, no on-demand price) and p5en.48xlarge.
    task = sky.Task.from_yaml(str(MODELS_DIR / "deepseek-v3-2.yaml"))
    task.set_resources_override({"infra": "aws/us-east-2"})
    best = optimize(sky, task)
    assert (best.region, best.instance_type) == ("us-east-2", "p5en.48xlarge")
    assert task.num_nodes == 1


@pytest.mark.usefixtures("aws_only")
def test_aws_zones_are_named_through_the_seeded_zone_mapping(sky: ModuleType) -> None:
    regions = sky.catalog.aws_catalog.get_region_zones_for_instance_type("p5en.48xlarge", False)
    zones = {region.name: [zone.name for zone in region.zones] for region in regions}
    assert zones == {"us-east-1": ["us-east-1a"], "us-east-2": ["us-east-2a"]}


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
