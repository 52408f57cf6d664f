"""The model tasks' `run` scripts, executed by bash as a replica runs them.

A stand-in `python3` comes first on the PATH: `python3 -m sglang.launch_server ...` either prints
what SGLang was given and exits, or starts the SGLang simulator with SGLang's flags translated;
every other call (the replica gate, the key generator) goes to the real interpreter, so the gate
the script writes out and starts is the one that serves.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.fleet.conftest import MODELS_DIR

MODEL_FILES = sorted(MODELS_DIR.glob("*.yaml"))
CANARY = "sk-sglang-canary-51d0"
REPORT_SGLANG = f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "sglang.launch_server" ]; then
  shift 2
  echo "server_args=$*"
  echo "edge_key_in_sglang_env=${{SGLANG_API_KEY:-}}"
  exit 0
fi
exec {sys.executable} "$@"
"""
# SGLang's flags the simulator takes under the same names (and --model-path as --model).
SIMULATE_SGLANG = f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "sglang.launch_server" ]; then
  shift 2
  exec {sys.executable} -c '
import sys
from warmgate.backends.sim.cli import main
kept = {{"--host", "--port", "--api-key", "--served-model-name", "--model-path"}}
args, given = ["--time-scale", "0", "--enable-metrics"], sys.argv[1:]
for flag, value in zip(given, given[1:] + [""]):
    if flag in kept:
        args += [flag.replace("--model-path", "--model"), value]
sys.exit(main(args))
' "$@"
fi
exec {sys.executable} "$@"
"""


def stand_in(directory: Path, script: str) -> str:
    shim = directory / "python3"
    shim.write_text(script)
    shim.chmod(0o755)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


def script_env(path: Path, search_path: str, **extra: str) -> dict[str, str]:
    config = yaml.safe_load(path.read_text())
    return {
        "PATH": search_path,
        **{name: str(value) for name, value in config["envs"].items()},
        "SKYPILOT_NUM_GPUS_PER_NODE": "4",
        "SKYPILOT_NUM_NODES": str(config.get("num_nodes", 1)),
        "SKYPILOT_NODE_RANK": "0",
        "SKYPILOT_NODE_IPS": "10.0.0.1",
        "HF_TOKEN": "hf_canary",
        # The gate on a free loopback port, not the replica's public 0.0.0.0:30000.
        "GATE_HOST": "127.0.0.1",
        "GATE_PORT": "0",
        **extra,
    }


def run_script(path: Path, search_path: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - bash runs our own task file's script
        ["/bin/bash", "-c", yaml.safe_load(path.read_text())["run"]],
        env=script_env(path, search_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def reporting_sglang(tmp_path: Path) -> str:
    return stand_in(tmp_path, REPORT_SGLANG)


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_sglang_runs_on_loopback_with_a_key_of_its_own_and_never_sees_the_edges_key(
    path: Path, reporting_sglang: str
) -> None:
    result = run_script(path, reporting_sglang, SGLANG_API_KEY=CANARY)
    assert result.returncode == 1, result.stderr  # SGLang ended: so does the job
    (args,) = re.findall(r"^server_args=(.*)$", result.stdout, re.MULTILINE)
    assert "--host 127.0.0.1 --port 30001 " in args
    local_key = re.findall(r"--api-key (\S+)", args)
    assert len(local_key) == 1
    assert len(local_key[0]) >= 32
    assert "edge_key_in_sglang_env=\n" in result.stdout
    assert CANARY not in result.stdout + result.stderr
    assert "hf_canary" not in result.stdout + result.stderr


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_nothing_starts_without_the_edges_key(path: Path, reporting_sglang: str) -> None:
    result = run_script(path, reporting_sglang)
    assert result.returncode != 0
    assert "server_args=" not in result.stdout
    assert "SGLANG_API_KEY" in result.stderr


def test_tensor_parallelism_is_the_nodes_gpus_and_deepseek_adds_attention_dp(
    reporting_sglang: str,
) -> None:
    qwen = run_script(MODELS_DIR / "qwen3-32b.yaml", reporting_sglang, SGLANG_API_KEY=CANARY)
    deepseek = run_script(
        MODELS_DIR / "deepseek-v3-2.yaml", reporting_sglang, SGLANG_API_KEY=CANARY
    )
    assert "--tp-size 4 " in qwen.stdout
    assert "--tp-size 4 --attn-dp-size 4 " in deepseek.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The qwen3-32b task's run script with the simulator as SGLang: the gate's URL, and the
    lines the job printed."""
    path = MODELS_DIR / "qwen3-32b.yaml"
    env = script_env(
        path,
        stand_in(tmp_path, SIMULATE_SGLANG),
        SGLANG_API_KEY=CANARY,
        SGLANG_LOCAL_PORT=str(free_port()),
    )
    job = subprocess.Popen(  # noqa: S603 - bash runs our own task file's script
        ["/bin/bash", "-c", yaml.safe_load(path.read_text())["run"]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert job.stdout is not None
    lines: list[str] = []
    gate_url = None
    try:
        # Both announce themselves once they accept connections.
        while gate_url is None or not any("simulator serving" in line for line in lines):
            line = job.stdout.readline()
            assert line, f"the job ended early: {lines}"
            lines.append(line)
            found = re.search(r"replica gate: listening on (\S+)", line)
            gate_url = f"http://{found.group(1)}" if found else gate_url
        yield gate_url, lines
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        rest, _ = job.communicate(timeout=30)
        lines.append(rest)


def test_a_replica_started_by_the_task_answers_the_edges_key_and_nothing_else(
    replica: tuple[str, list[str]],
) -> None:
    url, lines = replica
    with openai.OpenAI(base_url=f"{url}/v1", api_key=CANARY, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="qwen3-32b", messages=[{"role": "user", "content": "Say hi"}], max_tokens=4
        )
        assert reply.choices[0].message.content
    with httpx.Client(base_url=url) as http:
        for path in ("/v1/models", "/metrics", "/health_generate", "/get_server_info"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers={"Authorization": "Bearer sk-guess"}).status_code == 401
        assert http.get("/health").status_code == 200  # SkyServe's readiness probe
    assert CANARY not in "".join(lines)
