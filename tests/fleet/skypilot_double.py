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
    accelerators: str | None = "{'H100': 2}",
    nodes: int = 1,
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
        "user_name": "ops",
        "workspace": "default",
        "is_managed": False,
        "nodes": nodes,
        "cloud": "Lambda",
        "region": region,
        "accelerators": accelerators,
        "resources_str": f"{nodes}x Lambda({accelerators})",
    }


def replica_payload(
    replica_id: int, status: str, endpoint: str | None, *, gpus: str = "H100:2", nodes: int = 1
) -> dict[str, Any]:
    return {
        "replica_id": replica_id,
        "name": f"replica-cluster-{replica_id}",
        "status": status,
        "version": 1,
        "replica_info_version": 1,
        "endpoint": endpoint,
        "is_spot": False,
        "launched_at": 1_764_300_000,
        "handle": None,
        "cloud": "Lambda",
        "region": "us-east-1",
        "resources_str": f"{nodes}x(gpus={gpus}, cpus=52, mem=450, gpu_2x_h100_sxm5, disk=256)",
        "infra": "Lambda (us-east-1)",
    }


def service_payload(
    name: str, status: str, endpoint: str, replicas: list[dict[str, Any]]
) -> dict[str, Any]:
    """One record of `POST /serve/status` as the API server returns it."""
    return {
        "name": name,
        "controller_job_id": 1,
        "uptime": 3600,
        "status": status,
        "controller_port": 30001,
        "load_balancer_port": 30002,
        "endpoint": endpoint,
        "policy": "Autoscaling from 1 to 4 replicas (target QPS per replica: 4.0)",
        "requested_resources_str": "1x[H100:2, A100-80GB:2]",
        "load_balancing_policy": "least_load",
        "tls_encrypted": False,
        "active_versions": [1],
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
    # Set once `status` has been called this many times (ends a --watch loop).
    stop_after_status_calls: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    launched: list[tuple[str, Any]] = field(default_factory=list)
    served: list[tuple[str, Any]] = field(default_factory=list)
    downed: list[str] = field(default_factory=list)
    request_states: dict[str, str] = field(default_factory=dict)
    status_calls: int = 0
    _results: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._decoders = importlib.import_module("sky.server.requests.serializers.decoders")
        self.serve = SimpleNamespace(
            status=self._serve_status, up=self._serve_up, down=self._serve_down
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
        return [SimpleNamespace(status=self.request_states[rid]) for rid in request_ids]

    def status(self, cluster_names: list[str] | None = None, refresh: Any = None) -> str:
        self._conform("status", cluster_names, refresh=refresh)
        self.status_calls += 1
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
        if self.serve_status_error is not None:
            return self._request(self.serve_status_error)
        return self._request(self._decoders.decode_serve_status(copy.deepcopy(self.services)))

    def launch(self, task: Any, cluster_name: str, **options: Any) -> str:
        self._conform("launch", task, cluster_name=cluster_name, **options)
        self.launched.append((cluster_name, task))
        return self._request((1, None))

    def _serve_up(self, task: Any, service_name: str) -> str:
        self._conform("serve.up", task, service_name)
        self.served.append((service_name, task))
        return self._request((service_name, "http://198.51.100.1:30002"))

    def down(self, cluster_name: str) -> str:
        self._conform("down", cluster_name)
        self.downed.append(cluster_name)
        return self._request(None)

    def _serve_down(self, service_names: str) -> str:
        self._conform("serve.down", service_names)
        self.downed.append(service_names)
        return self._request(None)
