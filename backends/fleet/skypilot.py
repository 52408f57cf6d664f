"""The SkyPilot SDK calls the fleet commands make, each one resolving its request id.

SkyPilot 0.14's SDK talks to an API server: every call returns a request id at once, and
`sky.get` (wait for the value, or raise the request's error) or `sky.stream_and_get` (stream the
request's logs while waiting) resolves it. SkyPilot is imported on first use, so importing this
module costs nothing; tests hand in the SDK surface they want instead of the `sky` package.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from warmgate.backends.fleet.lineup import ModelTask

FINISHED_REQUEST_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class FleetError(Exception):
    """A fleet command cannot go on; the message says what to fix (never a secret value)."""


class SkyPilot:
    def __init__(self, sdk: Any = None) -> None:
        # The `sky` package (with `sky.serve` loaded), or a stand-in with the same surface.
        self._sdk = sdk

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            importlib.import_module("sky.serve")
            self._sdk = importlib.import_module("sky")
        return self._sdk

    # Task files -------------------------------------------------------------------------

    def read_config(self, path: Path) -> dict[str, Any]:
        config: dict[str, Any] = self.sdk.utils.yaml_utils.read_yaml(str(path))
        return config

    def task(
        self,
        model: ModelTask,
        *,
        environ: Mapping[str, str],
        infra: str | None = None,
        min_replicas: int | None = None,
    ) -> Any:
        """`sky.Task` for a model, its secrets taken from `environ` (as `--secret NAME` does)."""
        missing = [name for name in model.secret_names if not environ.get(name)]
        if missing:
            names = ", ".join(missing)
            raise FleetError(f"{model.key} needs the secrets {names}: set them in the environment")
        config = self.read_config(model.path)
        if infra is not None:
            config.setdefault("resources", {})["infra"] = infra
        if min_replicas is not None and "service" in config:
            policy = config["service"].setdefault("replica_policy", {})
            policy["min_replicas"] = min_replicas
            policy["max_replicas"] = max(min_replicas, int(policy.get("max_replicas", 0)))
        secrets = [(name, environ[name]) for name in model.secret_names]
        return self.sdk.Task.from_yaml_config(config, secrets_overrides=secrets)

    # Reading state ----------------------------------------------------------------------

    def clusters(self, *, refresh: bool = False) -> list[Any]:
        """`sky.status`: StatusResponse records of this user's clusters. `refresh` asks the
        clouds about clusters that can change behind SkyPilot's back (spot, autostop)."""
        mode = self.sdk.StatusRefreshMode.AUTO if refresh else self.sdk.StatusRefreshMode.NONE
        records: list[Any] = self.sdk.get(self.sdk.status(refresh=mode))
        return records

    def endpoint(self, cluster: str, port: int) -> str | None:
        """`sky.endpoints` for one port: "host:port", or None while it is not exposed."""
        try:
            endpoints: dict[int, str] = self.sdk.get(self.sdk.endpoints(cluster, port))
        except (self.sdk.exceptions.ClusterNotUpError, ValueError, RuntimeError):
            return None
        return endpoints.get(port)

    def services(self) -> list[dict[str, Any]]:
        """`sky.serve.status(None)`: every service with its `replica_info`; none without a
        serve controller."""
        try:
            services: list[dict[str, Any]] = self.sdk.get(self.sdk.serve.status(None))
        except self.sdk.exceptions.ClusterNotUpError:
            return []
        return services

    def request_finished(self, request_id: str) -> bool:
        payloads = self.sdk.api_status([request_id])
        return all(str(payload.status) in FINISHED_REQUEST_STATES for payload in payloads)

    # Changing state ---------------------------------------------------------------------

    def launch(self, task: Any, cluster: str, *, wait: bool) -> str:
        """`sky.launch` with autostop left off (the task file disables it); returns the request
        id, after streaming the launch to the end when `wait`."""
        request_id: str = self.sdk.launch(
            task, cluster_name=cluster, retry_until_up=True, idle_minutes_to_autostop=None
        )
        if wait:
            self.wait(request_id)
        return request_id

    def wait(self, request_id: str) -> None:
        """Stream a request's logs until it ends; raises the request's error."""
        self.sdk.stream_and_get(request_id)

    def serve_up(self, task: Any, service: str) -> str:
        """`sky.serve.up`; returns the service's load-balancer endpoint."""
        _, endpoint = self.sdk.stream_and_get(self.sdk.serve.up(task, service))
        return str(endpoint)

    def down(self, cluster: str) -> None:
        self.sdk.stream_and_get(self.sdk.down(cluster))

    def serve_down(self, service: str) -> None:
        self.sdk.stream_and_get(self.sdk.serve.down(service))
