"""From what SkyPilot reports to backends: UP plain clusters and READY SkyServe replicas.

Only what SkyServe's own load balancer would send traffic to is published: READY replicas of
the service's active versions. The inputs are SkyPilot's own results as `sky.get` returns
them: `StatusResponse` records (`sky.status`), `{port: "host:port"}` maps (`sky.endpoints`)
and the service dicts of `sky.serve.status` with their `replica_info`. Replicas are addressed
directly (their own URLs), never through the SkyServe load balancer: the edge does its own
balancing and health.
"""

from __future__ import annotations

import ast
import enum
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from warmgate.backends.fleet.document import FleetBackend
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.naming import KEY_ENV_LABEL, parse_cluster_name, parse_service_name

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


def key_env(labels: Any, default: str | None) -> str | None:
    """The variable that holds a backend's key on the edge: its `warmgate-key-env` label
    (`sglang_api_key_2` -> `SGLANG_API_KEY_2`; labels are lowercase on some clouds), else
    `default`. A replica carries the name of the key it was launched with, so replicas of two
    key generations can serve side by side while a key is rotated."""
    value = labels.get(KEY_ENV_LABEL) if isinstance(labels, Mapping) else None
    if isinstance(value, str) and value:
        return value.upper().replace("-", "_")
    return default


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
                api_key_env=key_env(field(record, "labels"), api_key_env),
                cloud=_text(field(record, "cloud")),
                region=_region(field(record, "region")),
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
    """One backend per READY replica of an active version of a service `wg-<model>[-<region>]`.

    SkyServe's own load balancer sends traffic only to READY replicas whose version is in the
    service's `active_versions` (`get_active_replica_urls`); edges get the same set. A replica
    SkyServe scales down turns SHUTTING_DOWN and is drained for 120 s before it goes, so it leaves
    the document on the first sync after the decision.
    """
    backends = []
    for service in services:
        name = str(service.get("name"))
        parsed = parse_service_name(name, lineup.keys())
        if parsed is None or status_name(service.get("status")) == SERVICE_SHUTTING_DOWN:
            continue
        task = lineup.get(parsed.model_key)
        active = set(service.get("active_versions") or ())
        for replica in service.get("replica_info") or ():
            endpoint = replica.get("endpoint")
            if status_name(replica.get("status")) != REPLICA_READY or not endpoint:
                continue
            if replica.get("version") not in active:
                continue
            launched = getattr(replica.get("handle"), "launched_resources", None)
            backends.append(
                FleetBackend(
                    model=task.served_name,
                    url=http_url(str(endpoint)),
                    api_key_env=key_env(getattr(launched, "labels", None), api_key_env),
                    cloud=_text(replica.get("cloud")),
                    region=_region(replica.get("region")) or parsed.region,
                    accelerators=_replica_accelerators(replica),
                    source=f"sky-serve:{name}/{replica.get('replica_id')}",
                    service=name,
                )
            )
    return backends


def controller_urls(
    services: Iterable[Mapping[str, Any]], lineup: Lineup, host: str | None = None
) -> dict[str, str]:
    """Service -> the URL of its SkyServe controller, where edges report their requests.

    SkyPilot reports the controller's port (`controller_port`) and the load balancer's endpoint,
    which runs on the same machine. `host` replaces that machine's address: outside Kubernetes
    SkyServe 0.14 binds its controller to 127.0.0.1, so edges reach it through a forward.
    """
    urls = {}
    for service in services:
        name = str(service.get("name"))
        port = service.get("controller_port")
        endpoint = service.get("endpoint")
        if parse_service_name(name, lineup.keys()) is None or not isinstance(port, int):
            continue
        address = host or (urlsplit(http_url(str(endpoint))).hostname if endpoint else None)
        if address:
            urls[name] = f"http://{address}:{port}"
    return urls


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


def _region(value: Any) -> str | None:
    """Regions as the names carry them (lowercase), so routing compares like with like."""
    text = _text(value)
    return None if text is None else text.lower()
