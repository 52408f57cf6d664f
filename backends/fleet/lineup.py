"""The model lineup: one SkyPilot task file per model under `sky/models/`.

The task file is the single source of truth: the served model name comes from its `envs`
(`SERVED_MODEL_NAME`), the port from `resources.ports`, the secrets it needs from `secrets`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVED_NAME_ENV = "SERVED_MODEL_NAME"
# The secret every model task passes to SGLang as `--api-key`.
API_KEY_SECRET = "SGLANG_API_KEY"  # noqa: S105 - the secret's name, not its value

ReadConfig = Callable[[Path], Mapping[str, Any]]


class LineupError(Exception):
    """A task file does not follow the lineup's conventions, or a model is unknown."""


@dataclass(frozen=True, slots=True)
class ModelTask:
    key: str
    path: Path
    served_name: str
    port: int
    # Names of the secrets the task declares (values come from the environment at launch).
    secret_names: tuple[str, ...]
    num_nodes: int


@dataclass(frozen=True, slots=True)
class Lineup:
    models: Mapping[str, ModelTask]

    @classmethod
    def from_directory(cls, directory: Path, read_config: ReadConfig) -> Lineup:
        models = {}
        for path in sorted(directory.glob("*.yaml")):
            task = model_task(path, read_config(path))
            models[task.key] = task
        if not models:
            raise LineupError(f"no task files (*.yaml) in {directory}")
        return cls(models)

    def __iter__(self) -> Iterator[ModelTask]:
        return iter(self.models.values())

    def keys(self) -> list[str]:
        return list(self.models)

    def get(self, key: str) -> ModelTask:
        try:
            return self.models[key]
        except KeyError:
            known = ", ".join(self.models)
            raise LineupError(f"unknown model {key!r} (known: {known})") from None


def model_task(path: Path, config: Mapping[str, Any]) -> ModelTask:
    envs = config.get("envs") or {}
    served_name = envs.get(SERVED_NAME_ENV)
    if not isinstance(served_name, str) or not served_name:
        raise LineupError(f"{path}: envs.{SERVED_NAME_ENV} must name the served model")
    resources = config.get("resources") or {}
    port = _single_port(resources.get("ports"))
    if port is None:
        raise LineupError(f"{path}: resources.ports must be the one SGLang port")
    secrets = config.get("secrets") or {}
    return ModelTask(
        key=path.stem,
        path=path,
        served_name=served_name,
        port=port,
        secret_names=tuple(secrets),
        num_nodes=int(config.get("num_nodes", 1)),
    )


def _single_port(value: object) -> int | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None
