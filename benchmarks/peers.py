"""The gateways a user would pick instead, each installed into its own virtual environment.

Venvs live under a cache directory outside the repository (`WARMGATE_BENCH_CACHE`, default
`~/.cache/warmgate-bench`) and are reused across runs. A benchmark skips a peer that is not
installed, with a note, unless it was asked to install them (`--peers`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# A throwaway key for a proxy that listens on loopback only during a benchmark.
LITELLM_MASTER_KEY = "sk-warmgate-bench-litellm"
SKYSERVE_RUNNER = Path(__file__).with_name("skyserve_lb.py")


def cache_dir() -> Path:
    return Path(os.environ.get("WARMGATE_BENCH_CACHE", "~/.cache/warmgate-bench")).expanduser()


@dataclass(frozen=True)
class Peer:
    name: str  # what the reports call it
    venv: str  # directory under <cache>/venvs
    requirement: str  # what pip installs
    note: str  # how it runs in the benchmarks

    @property
    def venv_dir(self) -> Path:
        return cache_dir() / "venvs" / self.venv

    @property
    def python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    def installed(self) -> bool:
        return (self.venv_dir / ".installed").exists()

    def install(self) -> None:
        """Creates the venv and pip-installs the requirement; pip's output goes to a log."""
        log_path = cache_dir() / "logs" / f"{self.venv}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"installing {self.requirement} into {self.venv_dir} (log: {log_path}) ...")
        with log_path.open("wb") as log:
            for argv in (
                [sys.executable, "-m", "venv", "--clear", str(self.venv_dir)],
                [str(self.python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
                [str(self.python), "-m", "pip", "install", "-q", self.requirement],
            ):
                subprocess.run(argv, check=True, stdout=log, stderr=subprocess.STDOUT)
        (self.venv_dir / ".installed").write_text(self.requirement + "\n")

    def command(self, port: int, upstream: str, model: str, workdir: Path) -> list[str]:
        """The argv that serves `model` from `upstream` on 127.0.0.1:`port`."""
        if self.venv == "litellm":
            config = workdir / "litellm.yaml"
            config.write_text(
                "model_list:\n"
                f"  - model_name: {model}\n"
                "    litellm_params:\n"
                f"      model: openai/{model}\n"
                f"      api_base: {upstream}/v1\n"
                "      api_key: unused\n"
                "litellm_settings:\n"
                "  drop_params: true\n"
                "  telemetry: false\n"
            )
            litellm = self.venv_dir / "bin" / "litellm"
            return [str(litellm), "--config", str(config), "--host", "127.0.0.1",
                    "--port", str(port), "--num_workers", "1"]  # fmt: skip
        if self.venv == "sglang-router":
            return [str(self.python), "-m", "sglang_router.launch_router",
                    "--host", "127.0.0.1", "--port", str(port), "--worker-urls", upstream,
                    "--policy", "cache_aware", "--log-level", "warn"]  # fmt: skip
        if self.venv == "skypilot":
            return [str(self.python), str(SKYSERVE_RUNNER), "--controller", upstream,
                    "--port", str(port)]  # fmt: skip
        raise ValueError(f"no command for {self.name}")

    @property
    def api_key(self) -> str | None:
        """The key clients present (LiteLLM refuses to start without a master key)."""
        return LITELLM_MASTER_KEY if self.venv == "litellm" else None

    def env(self) -> dict[str, str]:
        if self.venv == "litellm":
            # The bundled model price map instead of a download; no telemetry; quiet logs.
            return {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_LOG": "ERROR",
                "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY,
            }
        return {}


PEERS: dict[str, Peer] = {
    "litellm": Peer(
        "LiteLLM proxy", "litellm", "litellm[proxy]", "one uvicorn worker, no database"
    ),
    "sglang-router": Peer(
        "SGLang router", "sglang-router", "sglang-router==0.3.2", "Rust, cache_aware policy"
    ),
    "skyserve": Peer(
        "SkyServe load balancer",
        "skypilot",
        "skypilot==0.14.1",
        "sky.serve.load_balancer, default policy, canned controller sync",
    ),
}
