"""From what SkyPilot reports to backends: UP plain clusters and READY SkyServe replicas.

The inputs are SkyPilot's own results as `sky.get` returns them: `StatusResponse` records
(`sky.status`), `{port: "host:port"}` maps (`sky.endpoints`) and the service dicts of
`sky.serve.status` with their `replica_info`. Replicas are addressed directly (their own
URLs), never through the SkyServe load balancer: the edge does its own balancing and health.
"""

from __future__ import annotations

import ast
import enum
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from warmgate.backends.fleet.document import FleetBackend
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.naming import parse_cluster_name, parse_service_name

CLUSTER_UP = "UP"
REPLICA_READY = "READY"
SERVICE_SHUTTING_DOWN = "SHUTTING_DOWN"

# `sky.endpoints(cluster, port)` for one port: "host:port", or None when not exposed (yet).
EndpointOf = Callable[[str, int], str | None]

_GPUS_IN_RESOURCES = re.compile(r"gpus=([^,\s)]+)")
_NODES_IN_RESOURCES = re.compile(r"^(\d+)x")


def field(record: Any, name: str) -> Any:
    """A field of a SkyPilot record: a pydantic response model or a plain dict."""
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)


def status_name(value: Any) -> str:
    """`ClusterStatus.UP` / `ReplicaStatus.READY` / "UP" -> "UP"."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def http_url(endpoint: str) -> str:
    """SkyPilot endpoints may lack a scheme ("1.2.3.4:30000"); SkyServe adds http:// then too."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.startswith(("http://", "https://")) else f"http://{endpoint}"


def accelerators_label(value: Any) -> str | None:
    """`{'H100': 4}` (as a dict or its repr, as `sky.status` gives it) -> "H100:4"."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.startswith("{"):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return str(value)
    if isinstance(value, Mapping):
        return ",".join(f"{name}:{_count(count)}" for name, count in value.items())
    return str(value)


def _count(count: Any) -> str:
    return str(int(count)) if isinstance(count, float) and count.is_integer() else str(count)


def cluster_backends(
    records: Iterable[Any], endpoint_of: EndpointOf, lineup: Lineup, api_key_env: str | None
) -> list[FleetBackend]:
    """One backend per UP cluster named `wg-<model>-c<n>` whose SGLang port is exposed."""
    backends = []
    for record in records:
        name = str(field(record, "name"))
        parsed = parse_cluster_name(name, lineup.keys())
        if parsed is None or status_name(field(record, "status")) != CLUSTER_UP:
            continue
        task = lineup.get(parsed.model_key)
        endpoint = endpoint_of(name, task.port)
        if not endpoint:
            continue
        backends.append(
            FleetBackend(
                model=task.served_name,
                url=http_url(endpoint),
                api_key_env=api_key_env,
                cloud=_text(field(record, "cloud")),
                region=_text(field(record, "region")),
                accelerators=per_node(
                    accelerators_label(field(record, "accelerators")), field(record, "nodes")
                ),
                source=f"sky-cluster:{name}",
            )
        )
    return backends


def replica_backends(
    services: Iterable[Mapping[str, Any]], lineup: Lineup, api_key_env: str | None
) -> list[FleetBackend]:
    """One backend per READY replica of a service named `wg-<model>`."""
    backends = []
    for service in services:
        name = str(service.get("name"))
        key = parse_service_name(name, lineup.keys())
        if key is None or status_name(service.get("status")) == SERVICE_SHUTTING_DOWN:
            continue
        task = lineup.get(key)
        for replica in service.get("replica_info") or ():
            endpoint = replica.get("endpoint")
            if status_name(replica.get("status")) != REPLICA_READY or not endpoint:
                continue
            backends.append(
                FleetBackend(
                    model=task.served_name,
                    url=http_url(str(endpoint)),
                    api_key_env=api_key_env,
                    cloud=_text(replica.get("cloud")),
                    region=_text(replica.get("region")),
                    accelerators=_replica_accelerators(replica),
                    source=f"sky-serve:{name}/{replica.get('replica_id')}",
                )
            )
    return backends


def per_node(label: str | None, nodes: Any) -> str | None:
    """A multi-node cluster's accelerators: "2x(H100:8)"; one node: "H100:8"."""
    if label is None or not isinstance(nodes, int) or nodes <= 1:
        return label
    return f"{nodes}x({label})"


def _replica_accelerators(replica: Mapping[str, Any]) -> str | None:
    resources = str(replica.get("resources_str") or "")
    nodes_match = _NODES_IN_RESOURCES.match(resources)
    nodes = int(nodes_match.group(1)) if nodes_match else 1
    handle = replica.get("handle")
    launched = getattr(handle, "launched_resources", None)
    if launched is not None and launched.accelerators:
        return per_node(accelerators_label(launched.accelerators), nodes)
    match = _GPUS_IN_RESOURCES.search(resources)
    return per_node(match.group(1), nodes) if match else None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
