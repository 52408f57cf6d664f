"""The edge task's `run` script, executed by bash with a stand-in `warmgate` that records calls."""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.fleet.conftest import REPO

EDGE = REPO / "sky" / "proxy" / "edge.yaml"
# `serve` waits (bounded) for the sync sidecar's call to be recorded, so the script's
# background job is done before bash returns.
STAND_IN = """#!/bin/sh
echo "$* [token: ${SKYPILOT_SERVICE_ACCOUNT_TOKEN:-none}]" >> "$HOME/calls.log"
if [ "$1" = "serve" ] && [ -n "$SKYPILOT_API_SERVER_ENDPOINT" ]; then
  for _ in $(seq 200); do grep -q '^fleet ' "$HOME/calls.log" && exit 0; sleep 0.05; done
  exit 3
fi
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    binary = tmp_path / "warmgate-venv" / "bin" / "warmgate"
    binary.parent.mkdir(parents=True)
    binary.write_text(STAND_IN)
    binary.chmod(0o755)
    (tmp_path / "warmgate").mkdir()
    (tmp_path / "workdir").mkdir()
    return tmp_path


def run_edge(home: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    config = yaml.safe_load(EDGE.read_text())
    result = subprocess.run(  # noqa: S603 - bash runs our own task file's script
        ["/bin/bash", "-c", config["run"]],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            **{name: str(value) for name, value in config["envs"].items()},
            **env,
        },
        cwd=home / "workdir",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    log = home / "calls.log"
    return result, log.read_text().splitlines() if log.exists() else []


SERVE = "serve --config warmgate.toml --host 0.0.0.0 --port 8080 [token: none]"


def test_the_edge_serves_on_all_interfaces_with_the_mounted_config(home: Path) -> None:
    result, calls = run_edge(
        home, WARMGATE_ADMIN_KEY="adm_x", SGLANG_API_KEY="sk_x", WARMGATE_SKYPILOT_TOKEN=""
    )
    assert result.returncode == 0, result.stderr
    assert calls == [SERVE]


def test_with_an_api_server_the_edge_also_syncs_read_only_and_only_the_sync_holds_the_token(
    home: Path,
) -> None:
    result, calls = run_edge(
        home,
        WARMGATE_ADMIN_KEY="adm_x",
        SGLANG_API_KEY="sk_x",
        SKYPILOT_API_SERVER_ENDPOINT="https://skypilot.example.com",
        WARMGATE_SKYPILOT_TOKEN="sa_canary",
    )
    assert result.returncode == 0, result.stderr
    models_dir = home / "workdir" / "sky" / "models"
    assert sorted(calls) == sorted(
        [
            f"fleet --models-dir {models_dir} sync --out backends.json --watch 30 --no-relaunch"
            " [token: sa_canary]",
            SERVE,
        ]
    )


def test_an_api_server_without_a_token_stops_the_edge_before_it_serves(home: Path) -> None:
    result, calls = run_edge(
        home,
        WARMGATE_ADMIN_KEY="adm_x",
        SGLANG_API_KEY="sk_x",
        SKYPILOT_API_SERVER_ENDPOINT="https://skypilot.example.com",
        WARMGATE_SKYPILOT_TOKEN="",
    )
    assert result.returncode != 0
    assert "WARMGATE_SKYPILOT_TOKEN" in result.stderr
    assert calls == []


def test_skypilot_refuses_to_launch_an_edge_without_its_token(sky: ModuleType) -> None:
    """Every secret the edge declares is required: SkyPilot resolves a secret without a value
    at launch, and without a managed-secrets provider that is an error (execution.py)."""
    config = yaml.safe_load(EDGE.read_text())
    given = [("WARMGATE_ADMIN_KEY", "adm_x"), ("SGLANG_API_KEY", "sk_x")]
    task = sky.Task.from_yaml_config(config, secrets_overrides=given)
    assert [ref.name for ref in task.managed_secret_refs] == ["WARMGATE_SKYPILOT_TOKEN"]
    with sky.Dag() as dag:
        dag.add(task)
    execution = importlib.import_module("sky.execution")
    with pytest.raises(RuntimeError, match="No value available for secret"):
        execution._resolve_managed_secrets(dag)  # what sky.launch runs before provisioning
    empty = sky.Task.from_yaml_config(
        yaml.safe_load(EDGE.read_text()),
        secrets_overrides=[*given, ("WARMGATE_SKYPILOT_TOKEN", "")],
    )
    assert empty.managed_secret_refs == []


@pytest.mark.parametrize("missing", ["WARMGATE_ADMIN_KEY", "SGLANG_API_KEY"])
def test_the_edge_does_not_start_without_its_keys(home: Path, missing: str) -> None:
    keys = {"WARMGATE_ADMIN_KEY": "adm_x", "SGLANG_API_KEY": "sk_x", "WARMGATE_SKYPILOT_TOKEN": ""}
    del keys[missing]
    result, calls = run_edge(home, **keys)
    assert result.returncode != 0
    assert missing in result.stderr
    assert calls == []
