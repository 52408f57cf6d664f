"""Every YAML under sky/ as SkyPilot itself reads and validates it, and what keeps it warm."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.fleet.conftest import MODELS_DIR, REPO
from tests.fleet.lineup_facts import (
    ATTENTION_HEADS,
    DISK_OVERHEAD_GB,
    DOWNLOAD_GB_PER_S,
    STARTUP_S,
    WEIGHTS_GB,
    holds,
)

# SGLang's log on DeepGEMM's JIT precompile: 10-20 minutes on first start.
DEEPGEMM_PRECOMPILE_S = 20 * 60

TASK_FILES = sorted((REPO / "sky").rglob("*.yaml"))
GATE_SOURCE = (REPO / "backends" / "fleet" / "replica_gate.py").read_text()
MODEL_FILES = sorted(MODELS_DIR.glob("*.yaml"))
SGLANG_IMAGE = re.compile(r"^docker:lmsysorg/sglang:v\d+\.\d+\.\d+$")


def raw(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(REPO)) for path in paths]


def test_the_lineup_has_every_model_the_gateway_offers() -> None:
    assert {path.stem for path in MODEL_FILES} == set(WEIGHTS_GB)
    assert (REPO / "sky" / "proxy" / "edge.yaml") in TASK_FILES


def test_sky_holds_no_python_that_would_shadow_skypilots_package() -> None:
    assert not [p for p in (REPO / "sky").rglob("*") if p.suffix in {".py", ".pyc"}]


@pytest.mark.parametrize("path", TASK_FILES, ids=ids(TASK_FILES))
def test_every_task_file_loads_with_skypilots_own_parser(sky: ModuleType, path: Path) -> None:
    task = sky.Task.from_yaml(str(path))
    assert task.name == raw(path)["name"]
    assert task.run


@pytest.mark.parametrize("path", MODEL_FILES, ids=ids(MODEL_FILES))
def test_every_service_section_passes_skyserve_validation(sky: ModuleType, path: Path) -> None:
    task = sky.Task.from_yaml(str(path))
    sky.serve.validate_service_task(task, pool=False)
    spec = sky.serve.SkyServiceSpec.from_yaml_config(raw(path)["service"])
    assert spec.readiness_path == "/health"
    assert spec.min_replicas >= 1
    assert spec.max_replicas >= spec.min_replicas
    assert spec.target_qps_per_replica is not None


@pytest.mark.parametrize("path", MODEL_FILES, ids=ids(MODEL_FILES))
def test_models_stay_warm_autostop_off_and_never_scaled_to_zero(
    sky: ModuleType, path: Path
) -> None:
    task = sky.Task.from_yaml(str(path))
    for resources in task.resources:
        assert resources.autostop_config is not None
        assert resources.autostop_config.enabled is False
    assert task.service.min_replicas >= 1
    weights_gb = WEIGHTS_GB[path.stem]
    assert task.service.initial_delay_seconds >= STARTUP_S + weights_gb / DOWNLOAD_GB_PER_S


@pytest.mark.parametrize("path", MODEL_FILES, ids=ids(MODEL_FILES))
def test_every_accelerator_choice_holds_the_weights_splits_the_heads_and_fits_the_disk(
    sky: ModuleType, path: Path
) -> None:
    task = sky.Task.from_yaml(str(path))
    choices = list(task.resources)
    assert isinstance(task.resources, list), "accelerators are an ordered preference list"
    assert len(choices) >= 2
    for resources in choices:
        ((accelerator, count),) = resources.accelerators.items()
        # Weights + KV for the full advertised context, with SGLang's memory reserve.
        assert holds(path.stem, accelerator, int(count), task.num_nodes), (accelerator, count)
        tensor_parallel = int(count) * task.num_nodes
        assert ATTENTION_HEADS[path.stem] % tensor_parallel == 0, (accelerator, count)
        assert resources.disk_size >= WEIGHTS_GB[path.stem] + DISK_OVERHEAD_GB
        assert SGLANG_IMAGE.match(
            resources.image_id[None]
            if None in resources.image_id
            else next(iter(resources.image_id.values()))
        )
        assert [str(port) for port in resources.ports] == ["30000"]


@pytest.mark.parametrize("path", MODEL_FILES, ids=ids(MODEL_FILES))
def test_sglang_runs_on_loopback_with_metrics_cache_report_and_the_served_name(path: Path) -> None:
    config = raw(path)
    run = config["run"]
    for flag in (
        '--model-path "$MODEL_ID"',
        '--served-model-name "$SERVED_MODEL_NAME"',
        '--host 127.0.0.1 --port "$SGLANG_LOCAL_PORT"',
        "--enable-metrics --enable-cache-report",
        '--api-key "$SGLANG_LOCAL_KEY"',
    ):
        assert flag in run, flag
    assert "SKYPILOT_NUM_GPUS_PER_NODE" in run  # tensor parallelism follows the node's GPUs
    assert "env -u SGLANG_API_KEY python3 -m sglang.launch_server" in run
    assert config["envs"]["SERVED_MODEL_NAME"]
    # The public port is the gate's; SGLang's own is another, on loopback.
    assert config["resources"]["ports"] == 30000
    assert config["envs"]["SGLANG_LOCAL_PORT"] != "30000"


# SGLANG_LOCAL_KEY="$(python3 -c '<code>')" in a task's run script
LOCAL_KEY_COMMAND = re.compile(r"SGLANG_LOCAL_KEY=\"\$\(python3 -c '([^']+)'\)\"")


@pytest.mark.parametrize("path", MODEL_FILES, ids=ids(MODEL_FILES))
def test_sglangs_local_key_never_reads_as_a_flag(path: Path) -> None:
    """The key is passed as `--api-key KEY`: one that began with "-" would be taken for a flag
    by SGLang's argument parser and the launch would fail (URL-safe base64 did, 1 in 64)."""
    found = LOCAL_KEY_COMMAND.search(raw(path)["run"])
    assert found is not None
    two_thousand = f"for _ in range(2000):\n    {found.group(1)}"
    printed = subprocess.run(  # noqa: S603 - the task file's own one-line command
        [sys.executable, "-c", two_thousand], capture_output=True, text=True, check=True
    ).stdout
    keys = printed.split()
    assert len(set(keys)) == 2000  # each made at random
    assert all(len(key) >= 43 and not key.startswith("-") for key in keys)


@pytest.mark.parametrize("path", MODEL_FILES, ids=ids(MODEL_FILES))
def test_every_task_carries_the_replica_gate_verbatim(path: Path) -> None:
    """The task files cannot include a file (and SkyServe ships local files only through a
    bucket), so each carries backends/fleet/replica_gate.py, the gate the tests exercise."""
    run = raw(path)["run"]
    carried = run.split("<<'REPLICA_GATE'\n", 1)[1].split("\nREPLICA_GATE\n", 1)[0] + "\n"
    assert carried == GATE_SOURCE
    assert 'python3 "$GATE" &' in run


def test_each_model_gets_the_parser_or_mode_sglang_needs_for_it() -> None:
    runs = {path.stem: raw(path)["run"] for path in MODEL_FILES}
    assert "--reasoning-parser qwen3" in runs["qwen3-32b"]
    assert "--reasoning-parser deepseek-r1" in runs["deepseek-r1-distill-llama-70b"]
    assert "--is-embedding" in runs["qwen3-embedding-4b"]
    assert "--is-embedding" not in runs["whisper-large-v3"]
    assert "--reasoning-parser" not in runs["mistral-7b-instruct"]


def test_deepseek_v3_2_runs_on_one_node_with_tp8_and_attention_dp_and_a_cached_mount(
    sky: ModuleType,
) -> None:
    path = MODELS_DIR / "deepseek-v3-2.yaml"
    task = sky.Task.from_yaml(str(path))
    assert task.num_nodes == 1
    assert {str(r.accelerators) for r in task.resources} == {"{'H200': 8}", "{'B200': 8}"}
    run = raw(path)["run"]
    assert '--tp-size "$SKYPILOT_NUM_GPUS_PER_NODE"' in run
    assert '--attn-dp-size "$SKYPILOT_NUM_GPUS_PER_NODE"' in run
    assert "--nnodes" not in run
    # Weights (the Hugging Face cache) and DeepGEMM's compiled kernels on a cached bucket mount.
    (mount,) = task.storage_mounts.items()
    assert mount[0] == "/wg-cache"
    assert mount[1].mode == sky.StorageMode.MOUNT_CACHED
    assert "HF_HOME=/wg-cache/" in run
    assert "SGLANG_DG_CACHE_DIR=/wg-cache/" in run
    # The first replica's budget: image, load and capture, the download, DeepGEMM's precompile.
    assert task.service.initial_delay_seconds >= (
        STARTUP_S + WEIGHTS_GB["deepseek-v3-2"] / DOWNLOAD_GB_PER_S + DEEPGEMM_PRECOMPILE_S
    )


@pytest.mark.parametrize("path", TASK_FILES, ids=ids(TASK_FILES))
def test_secrets_are_declared_under_secrets_and_never_given_a_value(path: Path) -> None:
    config = raw(path)
    secrets = config.get("secrets") or {}
    assert "SGLANG_API_KEY" in secrets
    assert all(value is None for value in secrets.values())
    for name in config.get("envs") or {}:
        assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD", name), name
    if path.parent == MODELS_DIR:
        assert "HF_TOKEN" in secrets


def test_a_secret_passed_at_launch_reaches_the_task_but_not_what_skypilot_shows(
    sky: ModuleType,
) -> None:
    canary = "sk-canary-7f3a9c"
    config = raw(MODELS_DIR / "qwen3-32b.yaml")
    task = sky.Task.from_yaml_config(
        config, secrets_overrides=[("HF_TOKEN", canary), ("SGLANG_API_KEY", canary)]
    )
    # Sent to the API server with the launch (the replica needs it) ...
    assert canary in str(task.to_yaml_config())
    # ... but the YAML SkyPilot records and displays, and the task's repr, are redacted.
    assert canary not in str(task.to_yaml_config(use_user_specified_yaml=True))
    assert canary not in repr(task)
