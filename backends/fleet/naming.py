"""The naming convention that ties SkyPilot clusters and services to our models and regions.

A model's key is the stem of its task file, `sky/models/<key>.yaml`.

- SkyServe service: `wg-<key>-<region>` (or `wg-<key>` when launched without a region).
  SkyServe names its replica clusters `<service>-<replica id>`.
- Plain cluster: `wg-<key>-c<n>`, n = 1, 2, ... The `c` keeps these apart from replica clusters.
- Edges (`sky/proxy/edge.yaml`): `wg-edge-<region>`; they serve no model.

A region in a name is SkyPilot's region lowercased (`us-east-1`, RunPod's `US` -> `us`), so
that a model can have services in two regions that edges tell apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "wg-"
CLUSTER_MARK = "-c"
# The resource label that names the variable holding a backend's key on the edges, lowercased
# (`sglang_api_key_2` for `SGLANG_API_KEY_2`): GCP and Kubernetes labels allow no capitals.
KEY_ENV_LABEL = "warmgate-key-env"

# What SkyPilot accepts in a cluster or service name, restricted to what a region adds to ours.
# A region holds a letter: `wg-qwen3-32b-3` is replica 3's cluster, never a region `3`.
_REGION = re.compile(r"^(?=[a-z0-9-]*[a-z])[a-z0-9]+(-[a-z0-9]+)*$")
_CLUSTER_SUFFIX = re.compile(r"^c[0-9]+$")


@dataclass(frozen=True, slots=True)
class ClusterName:
    model_key: str
    index: int

    def __str__(self) -> str:
        return cluster_name(self.model_key, self.index)


@dataclass(frozen=True, slots=True)
class ServiceName:
    model_key: str
    region: str | None

    def __str__(self) -> str:
        return service_name(self.model_key, self.region)


def region_label(region: str) -> str:
    """A region as it appears in a name: `US` -> `us`; rejects what cannot be part of one."""
    label = region.strip().lower()
    if not _REGION.match(label) or _CLUSTER_SUFFIX.match(label):
        raise ValueError(f"{region!r} cannot be part of a service name")
    return label


def service_name(model_key: str, region: str | None = None) -> str:
    if region is None:
        return f"{PREFIX}{model_key}"
    return f"{PREFIX}{model_key}-{region_label(region)}"


def cluster_name(model_key: str, index: int) -> str:
    if index < 1:
        raise ValueError(f"cluster index starts at 1, got {index}")
    return f"{PREFIX}{model_key}{CLUSTER_MARK}{index}"


def _keys_longest_first(model_keys: Iterable[str]) -> list[str]:
    return sorted(model_keys, key=len, reverse=True)


def parse_cluster_name(name: str, model_keys: Iterable[str]) -> ClusterName | None:
    """`wg-<key>-c<n>` for a known key, else None. Keys are matched whole, longest first, so a
    key that ends in digits (`deepseek-v3-2`) is never confused with a shorter one."""
    for key in _keys_longest_first(model_keys):
        head = f"{PREFIX}{key}{CLUSTER_MARK}"
        rest = name.removeprefix(head)
        if rest != name and rest.isascii() and rest.isdigit() and not rest.startswith("0"):
            return ClusterName(key, int(rest))
    return None


def parse_service_name(name: str, model_keys: Iterable[str]) -> ServiceName | None:
    """The model key and region of service `wg-<key>[-<region>]`, else None."""
    keys = _keys_longest_first(model_keys)
    for key in keys:
        head = f"{PREFIX}{key}"
        if name == head:
            return ServiceName(key, None)
        rest = name.removeprefix(f"{head}-")
        if rest == name:
            continue
        # The longest key that names the start decides: `wg-deepseek-v3-2-c1` is a cluster of
        # `deepseek-v3-2`, never model `deepseek-v3` in a region `2-c1`.
        if not _REGION.match(rest) or _CLUSTER_SUFFIX.match(rest):
            return None
        return ServiceName(key, rest)
    return None


def parse_replica_cluster(name: str, model_keys: Iterable[str]) -> ServiceName | None:
    """The service of SkyServe replica cluster `<service>-<replica id>`, else None."""
    service, _, replica_id = name.rpartition("-")
    if not (replica_id.isascii() and replica_id.isdigit()) or not service:
        return None
    return parse_service_name(service, model_keys)
