"""The naming convention that ties SkyPilot clusters and services to our models.

A model's key is the stem of its task file, `sky/models/<key>.yaml`.

- SkyServe service: `wg-<key>`. SkyServe names its replica clusters `<service>-<replica id>`.
- Plain cluster: `wg-<key>-c<n>`, n = 1, 2, ... The `c` keeps these apart from replica clusters.
- Edges (`sky/proxy/edge.yaml`): `wg-edge-<region>`; they serve no model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "wg-"
CLUSTER_MARK = "-c"


@dataclass(frozen=True, slots=True)
class ClusterName:
    model_key: str
    index: int

    def __str__(self) -> str:
        return cluster_name(self.model_key, self.index)


def service_name(model_key: str) -> str:
    return f"{PREFIX}{model_key}"


def cluster_name(model_key: str, index: int) -> str:
    if index < 1:
        raise ValueError(f"cluster index starts at 1, got {index}")
    return f"{PREFIX}{model_key}{CLUSTER_MARK}{index}"


def parse_cluster_name(name: str, model_keys: Iterable[str]) -> ClusterName | None:
    """`wg-<key>-c<n>` for a known key, else None. Keys are matched whole, longest first, so a
    key that ends in digits (`deepseek-v3-2`) is never confused with a shorter one."""
    for key in sorted(model_keys, key=len, reverse=True):
        head = f"{PREFIX}{key}{CLUSTER_MARK}"
        rest = name.removeprefix(head)
        if rest != name and rest.isascii() and rest.isdigit() and not rest.startswith("0"):
            return ClusterName(key, int(rest))
    return None


def parse_service_name(name: str, model_keys: Iterable[str]) -> str | None:
    """The model key of service `wg-<key>`, else None."""
    key = name.removeprefix(PREFIX)
    if key != name and key in set(model_keys):
        return key
    return None
