"""SkyPilot's SDK as the fleet commands use it, answering from API-server payloads.

Like the real SDK, every call returns a request id at once and `get` / `stream_and_get`
resolve it. The values are what SkyPilot's own client decoders
(`sky.server.requests.serializers.decoders`) make of the JSON an API server sends: pydantic
`StatusResponse` records with `ClusterStatus`, service dicts with `ServiceStatus` and
`ReplicaStatus`. Everything else (`Task`, `StatusRefreshMode`, `exceptions`, `utils`) is
SkyPilot itself.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import threading
import uuid
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any


def cluster_payload(
    name: str,
    status: str = "UP",
    *,
    region: str = "us-east-1",
    cloud: str = "Lambda",
    accelerators: str | None = "{'H100': 2}",
    nodes: int = 1,
    user_name: str = "ops",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One record of `POST /status` as the API server returns it."""
    return {
        "name": name,
        "launched_at": 1_764_300_000,
        "handle": None,
        "last_use": f"sky launch -c {name}",
        "status": status,
        "autostop": -1,
        "to_down": False,
        "cluster_hash": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
        "cluster_ever_up": True,
        "user_hash": "a1b2c3d4",
        "user_name": user_name,
        "workspace": "default",
        "is_managed": False,
        "nodes": nodes,
        "cloud": cloud,
        "region": region,
        "accelerators": accelerators,
        "resources_str": f"{nodes}x {cloud}({accelerators})",
        "labels": labels,
    }


def replica_payload(
    replica_id: int,
    status: str,
    endpoint: str | None,
    *,
    gpus: str = "H100:2",
    nodes: int = 1,
    version: int = 1,
    region: str | None = "us-east-1",
    labels: dict[str, str] | None = None,
    cluster: str | None = None,
) -> dict[str, Any]:
    """One `replica_info` entry (`cluster`: its cluster, `<service>-<replica id>` in SkyServe);
    with `labels`, the replica's handle as the API server sends it
    (`CloudVmRayResourceHandle.to_dict()`, which SkyPilot's decoder turns back into a handle)."""
    handle = None
    if labels is not None:
        handle = {
            "cluster_name": f"replica-cluster-{replica_id}",
            "launched_nodes": nodes,
            "launched_resources": {
                "infra": f"lambda/{region}",
                "accelerators": gpus,
                "labels": labels,
            },
        }
    return {
        "replica_id": replica_id,
        "name": cluster or f"replica-cluster-{replica_id}",
        "status": status,
        "version": version,
        "replica_info_version": 1,
        "endpoint": endpoint,
        "is_spot": False,
        "launched_at": 1_764_300_000,
        "handle": handle,
        "cloud": "Lambda",
        "region": region,
        "resources_str": f"{nodes}x(gpus={gpus}, cpus=52, mem=450, gpu_2x_h100_sxm5, disk=256)",
        "infra": "Lambda (us-east-1)",
    }


def cost_payload(
    name: str, *, duration_s: int, accelerators: str, cost_usd: float, nodes: int = 1
) -> dict[str, Any]:
    """One record of `POST /cost_report` as the API server returns it."""
    return {
        "name": name,
        "launched_at": 1_764_300_000,
        "duration": duration_s,
        "last_use": f"sky launch -c {name}",
        "num_nodes": nodes,
        "resources": {"infra": "lambda/us-east-1", "accelerators": accelerators},
        "cluster_hash": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
        "usage_intervals": [[1_764_300_000, 1_764_300_000 + duration_s]],
        "total_cost": cost_usd,
        "status": None,
        "user_hash": "a1b2c3d4",
        "user_name": "ops",
        "workspace": "default",
    }


def service_payload(
    name: str,
    status: str,
    endpoint: str,
    replicas: list[dict[str, Any]],
    *,
    active_versions: list[int] | None = None,
    controller_port: int = 20001,
) -> dict[str, Any]:
    """One record of `POST /serve/status` as the API server returns it."""
    return {
        "name": name,
        "controller_job_id": 1,
        "uptime": 3600,
        "status": status,
        "controller_port": controller_port,
        "load_balancer_port": 30002,
        "endpoint": endpoint,
        "policy": "Autoscaling from 1 to 4 replicas (target QPS per replica: 4.0)",
        "requested_resources_str": "1x[H100:2, A100-80GB:2]",
        "load_balancing_policy": "least_load",
        "tls_encrypted": False,
        "active_versions": [1] if active_versions is None else active_versions,
        "replica_info": replicas,
    }


@dataclass
class SkyPilotDouble:
    sky: ModuleType
    clusters: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    # cluster name -> the address `sky.endpoints` reports for its port 30000
    addresses: dict[str, str] = field(default_factory=dict)
    # Raised by the next `status` call (an API server that is down), then cleared.
    status_error: Exception | None = None
    # Raised by every `serve.status` call while set.
    serve_status_error: Exception | None = None
    # What `cost_report` answers (records as the API server sends them).
    costs: list[dict[str, Any]] = field(default_factory=list)
    # Raised by `launch` requests of these clusters (a quota or capacity refusal).
    launch_errors: dict[str, Exception] = field(default_factory=dict)
    # What a `serve.up` request ends with instead of success (e.g. a controller refusal).
    serve_up_error: Exception | None = None
    # How many `api_status` polls a `serve.up` request stays RUNNING (None: it never ends,
    # a controller launch SkyServe retries until up).
    serve_up_running_polls: int | None = 0
    # Replaces `services` at each `serve.status` call, one entry per call, while it lasts: a
    # service's replicas as they move from PENDING through PROVISIONING onwards.
    services_script: list[list[dict[str, Any]]] = field(default_factory=list)
    # Set once `status` has been called this many times (ends a --watch loop).
    stop_after_status_calls: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    launched: list[tuple[str, Any]] = field(default_factory=list)
    served: list[tuple[str, Any]] = field(default_factory=list)
    downed: list[str] = field(default_factory=list)
    updated: list[tuple[str, Any, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    executed: list[tuple[str, Any]] = field(default_factory=list)
    cancelled_requests: list[str] = field(default_factory=list)
    status_all_users: list[bool] = field(default_factory=list)
    request_states: dict[str, str] = field(default_factory=dict)
    status_calls: int = 0
    _results: dict[str, Any] = field(default_factory=dict)
    # request id -> api_status polls left before it ends (None: never)
    _running_polls: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._decoders = importlib.import_module("sky.server.requests.serializers.decoders")
        self.serve = SimpleNamespace(
            status=self._serve_status,
            up=self._serve_up,
            down=self._serve_down,
            update=self._serve_update,
            UpdateMode=self.sky.serve.UpdateMode,
        )

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the double does not define: they are SkyPilot's own.
        if name.startswith("_") or name == "sky":
            raise AttributeError(name)
        return getattr(self.sky, name)

    def _conform(self, function: str, *args: Any, **kwargs: Any) -> None:
        """Every call must fit the real SDK function's signature (SkyPilot 0.14.1)."""
        target: Any = self.sky
        for part in function.split("."):
            target = getattr(target, part)
        inspect.signature(target).bind(*args, **kwargs)

    def _request(self, value: Any) -> str:
        request_id = str(uuid.uuid4())
        self._results[request_id] = value
        self.request_states[request_id] = "RUNNING"
        return request_id

    def get(self, request_id: str) -> Any:
        self._conform("get", request_id)
        value = self._results.pop(request_id)
        self.request_states[request_id] = "FAILED" if isinstance(value, Exception) else "SUCCEEDED"
        if isinstance(value, Exception):
            raise value
        return value

    def stream_and_get(self, request_id: str) -> Any:
        self._conform("stream_and_get", request_id)
        return self.get(request_id)

    def api_status(self, request_ids: list[str]) -> list[SimpleNamespace]:
        self._conform("api_status", request_ids)
        for rid in request_ids:
            if rid not in self._running_polls:
                continue
            left = self._running_polls[rid]
            if left is not None and left <= 0:
                del self._running_polls[rid]
                failed = isinstance(self._results.get(rid), Exception)
                self.request_states[rid] = "FAILED" if failed else "SUCCEEDED"
            elif left is not None:
                self._running_polls[rid] = left - 1
        return [SimpleNamespace(status=self.request_states[rid]) for rid in request_ids]

    def api_cancel(self, request_ids: str | list[str] | None = None) -> str:
        self._conform("api_cancel", request_ids)
        cancelled = [request_ids] if isinstance(request_ids, str) else list(request_ids or ())
        for rid in cancelled:
            self.cancelled_requests.append(rid)
            self._running_polls.pop(rid, None)
            self.request_states[rid] = "CANCELLED"
        return self._request(cancelled)

    def status(
        self, cluster_names: list[str] | None = None, refresh: Any = None, all_users: bool = False
    ) -> str:
        self._conform("status", cluster_names, refresh=refresh, all_users=all_users)
        self.status_calls += 1
        self.status_all_users.append(all_users)
        if self.stop_after_status_calls == self.status_calls:
            self.stop.set()
        if self.status_error is not None:
            error, self.status_error = self.status_error, None
            return self._request(error)
        return self._request(self._decoders.decode_status(copy.deepcopy(self.clusters)))

    def endpoints(self, cluster: str, port: int | None = None) -> str:
        self._conform("endpoints", cluster, port)
        record = next((c for c in self.clusters if c["name"] == cluster), None)
        if record is None or record["status"] != "UP":
            error = self.sky.exceptions.ClusterNotUpError(f"Cluster {cluster!r} not found.")
            return self._request(error)
        address = self.addresses.get(cluster)
        payload = {} if address is None else {str(port): address}
        return self._request(self._decoders.decode_endpoints(payload))

    def _serve_status(self, service_names: Any) -> str:
        self._conform("serve.status", service_names)
        if self.services_script:
            self.services = self.services_script.pop(0)
        if self.serve_status_error is not None:
            return self._request(self.serve_status_error)
        return self._request(self._decoders.decode_serve_status(copy.deepcopy(self.services)))

    def launch(self, task: Any, cluster_name: str, **options: Any) -> str:
        self._conform("launch", task, cluster_name=cluster_name, **options)
        self.launched.append((cluster_name, task))
        error = self.launch_errors.get(cluster_name)
        return self._request((1, None) if error is None else error)

    def exec(self, task: Any, cluster_name: str) -> str:
        self._conform("exec", task, cluster_name=cluster_name)
        self.executed.append((cluster_name, task))
        return self._request((2, None))

    def cancel(self, cluster_name: str, all: bool = False) -> str:
        self._conform("cancel", cluster_name, all=all)
        self.cancelled.append(cluster_name)
        return self._request(None)

    def optimize(self, dag: Any) -> str:
        """SkyPilot's own optimizer, in process, over whatever catalogs and clouds the test set."""
        self._conform("optimize", dag)
        try:
            self.sky.optimizer.Optimizer.optimize(dag, quiet=True)
        except self.sky.exceptions.ResourcesUnavailableError as exc:
            return self._request(exc)
        return self._request(dag)

    def cost_report(self, days: int | None = None) -> str:
        self._conform("cost_report", days=days)
        return self._request(self._decoders.decode_cost_report(copy.deepcopy(self.costs)))

    def _serve_update(self, task: Any, service_name: str, mode: Any) -> str:
        self._conform("serve.update", task, service_name, mode)
        self.updated.append((service_name, task, mode))
        return self._request(None)

    def _serve_up(self, task: Any, service_name: str) -> str:
        self._conform("serve.up", task, service_name)
        self.served.append((service_name, task))
        value = self.serve_up_error or (service_name, "http://198.51.100.1:30002")
        request_id = self._request(value)
        self._running_polls[request_id] = self.serve_up_running_polls
        return request_id

    def down(self, cluster_name: str) -> str:
        self._conform("down", cluster_name)
        self.downed.append(cluster_name)
        return self._request(None)

    def _serve_down(self, service_names: str) -> str:
        self._conform("serve.down", service_names)
        self.downed.append(service_names)
        return self._request(None)
