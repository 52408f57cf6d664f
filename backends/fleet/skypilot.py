"""The SkyPilot SDK calls the fleet commands make, each one resolving its request id.

SkyPilot 0.14's SDK talks to an API server: every call returns a request id at once, and
`sky.get` (wait for the value, or raise the request's error) or `sky.stream_and_get` (stream the
request's logs while waiting) resolves it. SkyPilot is imported on first use, so importing this
module costs nothing; tests hand in the SDK surface they want instead of the `sky` package.

What an answer means is decided here, once: a failed request is an error (the API server is
down, the serve controller cannot be reached), never an empty fleet. Only SkyServe's own
"no controller exists" is read as "no services".
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from warmgate.backends.fleet.lineup import API_KEY_SECRET, ModelTask
from warmgate.backends.fleet.naming import KEY_ENV_LABEL

FINISHED_REQUEST_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class FleetError(Exception):
    """A fleet command cannot go on; the message says what to fix (never a secret value)."""


class ControllerUnreachableError(FleetError):
    """The SkyServe controller exists but did not answer (INIT, SSH check failed, STOPPED)."""


def one_line(exc: BaseException) -> str:
    """A SkyPilot error (its own types, an unreachable API server, a cloud refusal) as one
    line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    kind = type(exc).__name__
    return (
        f"SkyPilot: {kind}: {first}"
        if type(exc).__module__.startswith("sky")
        else f"{kind}: {first}"
    )


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
        key_env: str | None = None,
    ) -> Any:
        """`sky.Task` for a model, its secrets taken from `environ` (as `--secret NAME` does).

        `key_env` launches the replicas with the key held in that variable instead of
        `SGLANG_API_KEY`, and labels them with its name so that `fleet sync` tells edges which
        variable holds their key (a key rotation)."""
        sources = {name: name for name in model.secret_names}
        if key_env is not None:
            if API_KEY_SECRET not in sources:
                raise FleetError(f"{model.key} declares no {API_KEY_SECRET} secret")
            sources[API_KEY_SECRET] = key_env
        missing = [source for source in sources.values() if not environ.get(source)]
        if missing:
            names = ", ".join(missing)
            raise FleetError(f"{model.key} needs the secrets {names}: set them in the environment")
        config = self.read_config(model.path)
        resources = config.setdefault("resources", {})
        if infra is not None:
            resources["infra"] = infra
        if key_env is not None:
            resources.setdefault("labels", {})[KEY_ENV_LABEL] = key_env.lower()
        if min_replicas is not None and "service" in config:
            policy = config["service"].setdefault("replica_policy", {})
            policy["min_replicas"] = min_replicas
            policy["max_replicas"] = max(min_replicas, int(policy.get("max_replicas", 0)))
        secrets = [(name, environ[source]) for name, source in sources.items()]
        return self.sdk.Task.from_yaml_config(config, secrets_overrides=secrets)

    # Reading state ----------------------------------------------------------------------

    def clusters(self, *, refresh: bool = False) -> list[Any]:
        """`sky.status` of every user's clusters (an operator's and the service account's
        alike): StatusResponse records. `refresh` asks the clouds about clusters that can
        change behind SkyPilot's back (spot, autostop)."""
        mode = self.sdk.StatusRefreshMode.AUTO if refresh else self.sdk.StatusRefreshMode.NONE
        records: list[Any] = self.sdk.get(self.sdk.status(refresh=mode, all_users=True))
        return records

    def endpoint(self, cluster: str, port: int) -> str | None:
        """`sky.endpoints` for one port: "host:port", or None while the cluster is not UP (it
        changed since `sky.status`) or the port is not exposed. Any other failure (the API
        server is down) is raised: it says nothing about the cluster."""
        try:
            endpoints: dict[int, str] = self.sdk.get(self.sdk.endpoints(cluster, port))
        except (self.sdk.exceptions.ClusterNotUpError, ValueError):
            # ValueError: the port is not exposed, or the cluster is gone (ClusterDoesNotExist).
            return None
        return endpoints.get(port)

    def services(self) -> list[dict[str, Any]]:
        """`sky.serve.status(None)`: every service with its `replica_info`.

        SkyServe raises `ClusterNotUpError` both when no controller exists (no services) and
        when the controller is INIT and its SSH check failed, or STOPPED (services exist but
        cannot be read). Only the first, which carries no controller status, means none."""
        try:
            services: list[dict[str, Any]] = self.sdk.get(self.sdk.serve.status(None))
        except self.sdk.exceptions.ClusterNotUpError as exc:
            controller_status = getattr(exc, "cluster_status", None)
            if controller_status is None:
                return []
            raise ControllerUnreachableError(
                f"SkyServe controller is {getattr(controller_status, 'value', controller_status)}"
                f" and did not answer: {exc}"
            ) from exc
        return services

    def request_finished(self, request_id: str) -> bool:
        payloads = self.sdk.api_status([request_id])
        return all(str(payload.status) in FINISHED_REQUEST_STATES for payload in payloads)

    def result(self, request_id: str) -> Any:
        """The value of a finished request, or its error raised."""
        return self.sdk.get(request_id)

    def cancel_request(self, request_id: str) -> None:
        self.sdk.get(self.sdk.api_cancel(request_id))

    def cost_report(self, days: int) -> list[dict[str, Any]]:
        """`sky.cost_report`: every cluster launched through this API server in the last
        `days`, with its usage in seconds and its cost (SkyPilot's catalog prices)."""
        records: list[dict[str, Any]] = self.sdk.get(self.sdk.cost_report(days=days))
        return records

    # Changing state ---------------------------------------------------------------------

    def launch(self, task: Any, cluster: str, *, wait: bool) -> str:
        """`sky.launch` with autostop left off (the task file disables it) and no retry: a
        quota or capacity refusal ends the request instead of retrying forever. Returns the
        request id, after streaming the launch to the end when `wait`."""
        request_id: str = self.sdk.launch(
            task, cluster_name=cluster, retry_until_up=False, idle_minutes_to_autostop=None
        )
        if wait:
            self.wait(request_id)
        return request_id

    def restart(self, task: Any, cluster: str) -> str:
        """Cancel the cluster's jobs (a hung SGLang holds its GPUs) and run the task again on
        the same cluster; returns the exec request id."""
        self.sdk.get(self.sdk.cancel(cluster, all=True))
        request_id: str = self.sdk.exec(task, cluster_name=cluster)
        return request_id

    def wait(self, request_id: str) -> Any:
        """Stream a request's logs until it ends; returns its value, raises its error."""
        return self.sdk.stream_and_get(request_id)

    def serve_up_request(self, task: Any, service: str) -> str:
        """`sky.serve.up`: launches the controller if need be and registers the service;
        returns the request id at once (SkyServe retries capacity refusals until up, so the
        caller bounds the wait)."""
        request_id: str = self.sdk.serve.up(task, service)
        return request_id

    def serve_update(self, task: Any, service: str, *, rolling: bool = True) -> None:
        """`sky.serve.update`: a new version of the service. Rolling replaces replicas one by
        one (old and new serve side by side); blue-green switches once the new ones are up."""
        modes = self.sdk.serve.UpdateMode
        mode = modes.ROLLING if rolling else modes.BLUE_GREEN
        self.sdk.stream_and_get(self.sdk.serve.update(task, service, mode))

    def down(self, cluster: str) -> None:
        self.sdk.stream_and_get(self.sdk.down(cluster))

    def serve_down(self, service: str) -> None:
        self.sdk.stream_and_get(self.sdk.serve.down(service))
