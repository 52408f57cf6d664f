"""The model tasks' `run` scripts, executed by bash with a stand-in for SGLang's launcher.

The stand-in `python3` prints its arguments the way SGLang logs its server args at startup
(the API key included) and passes every other call to the real interpreter, so the log filter
in the script runs for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fleet.conftest import MODELS_DIR

MODEL_FILES = sorted(MODELS_DIR.glob("*.yaml"))
CANARY = "sk-sglang-canary-51d0"
STAND_IN = f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "sglang.launch_server" ]; then
  shift 2
  echo "server_args=$*"
  exit 0
fi
exec {sys.executable} "$@"
"""


@pytest.fixture
def stand_in_path(tmp_path: Path) -> str:
    shim = tmp_path / "python3"
    shim.write_text(STAND_IN)
    shim.chmod(0o755)
    return f"{tmp_path}{os.pathsep}{os.environ['PATH']}"


def run_script(path: Path, search_path: str, **extra: str) -> subprocess.CompletedProcess[str]:
    config = yaml.safe_load(path.read_text())
    env = {
        "PATH": search_path,
        **{name: str(value) for name, value in config["envs"].items()},
        "SKYPILOT_NUM_GPUS_PER_NODE": "4",
        "SKYPILOT_NUM_NODES": str(config.get("num_nodes", 1)),
        "SKYPILOT_NODE_RANK": "0",
        "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2",
        "HF_TOKEN": "hf_canary",
        **extra,
    }
    return subprocess.run(  # noqa: S603 - bash runs our own task file's script
        ["/bin/bash", "-c", config["run"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_the_api_key_sglang_logs_at_startup_is_redacted_from_the_job_log(
    path: Path, stand_in_path: str
) -> None:
    result = run_script(path, stand_in_path, SGLANG_API_KEY=CANARY)
    assert result.returncode == 0, result.stderr
    assert "server_args=" in result.stdout
    assert "--api-key [redacted]" in result.stdout
    assert CANARY not in result.stdout + result.stderr
    assert "hf_canary" not in result.stdout + result.stderr


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_sglang_never_starts_without_an_api_key(path: Path, stand_in_path: str) -> None:
    result = run_script(path, stand_in_path)
    assert result.returncode != 0
    assert "server_args=" not in result.stdout
    assert "SGLANG_API_KEY" in result.stderr


def test_tensor_parallelism_is_the_nodes_gpus_and_deepseek_adds_attention_dp(
    stand_in_path: str,
) -> None:
    qwen = run_script(MODELS_DIR / "qwen3-32b.yaml", stand_in_path, SGLANG_API_KEY=CANARY)
    deepseek = run_script(MODELS_DIR / "deepseek-v3-2.yaml", stand_in_path, SGLANG_API_KEY=CANARY)
    assert "--tp-size 4 " in qwen.stdout
    assert "--tp-size 4 --attn-dp-size 4 " in deepseek.stdout
