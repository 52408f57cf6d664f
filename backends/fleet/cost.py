"""`fleet cost`: GPU-hours and their cost per model from SkyPilot, against the ledger.

SkyPilot's cost report (`sky.cost_report`) holds every cluster launched through this API
server, up or gone, with its usage and its cost at catalog prices: plain clusters, and SkyServe
replicas when the serve controller runs on the API server (consolidation mode). Replicas
launched by a separate controller VM are not in it; their GPU-hours since launch are counted
from `sky.serve.status` and their cost is marked unknown. The flat price per request at which a
model breaks even is its cost over the window divided by the requests the ledger counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from warmgate.backends.fleet.discovery import status_name
from warmgate.backends.fleet.ledger_source import ModelUsage
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.naming import parse_cluster_name, parse_replica_cluster

SECONDS_PER_HOUR = 3600
_GONE_REPLICA = frozenset({"SHUTTING_DOWN", "FAILED", "FAILED_CLEANUP", "PREEMPTED", "UNKNOWN"})


@dataclass
class ModelCost:
    model: str
    gpu_hours: float = 0.0
    cost_usd: float = 0.0
    # GPU-hours whose cost SkyPilot does not report (replicas of a separate controller).
    unpriced_gpu_hours: float = 0.0
    usage: ModelUsage = field(default_factory=lambda: ModelUsage(0, 0, 0.0))

    @property
    def break_even_usd(self) -> float | None:
        """The flat price per request that pays for the GPUs at the observed request rate."""
        if self.usage.requests == 0 or self.unpriced_gpu_hours:
            return None
        return self.cost_usd / self.usage.requests


def model_key_of(name: str, lineup: Lineup) -> str | None:
    cluster = parse_cluster_name(name, lineup.keys())
    if cluster is not None:
        return cluster.model_key
    replica = parse_replica_cluster(name, lineup.keys())
    return None if replica is None else replica.model_key


def _gpus(accelerators: Any) -> float:
    if isinstance(accelerators, Mapping):
        return float(sum(float(count) for count in accelerators.values()))
    return 0.0


def costs(
    lineup: Lineup,
    reports: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    usage: Mapping[str, ModelUsage],
    *,
    window_start_s: float,
    now_s: float,
) -> list[ModelCost]:
    by_key = {task.key: ModelCost(model=task.key) for task in lineup}
    reported = set()
    for record in reports:
        name = str(record.get("name"))
        key = model_key_of(name, lineup)
        if key is None:
            continue
        reported.add(name)
        resources = record.get("resources")
        gpus = _gpus(getattr(resources, "accelerators", None)) * int(record.get("num_nodes") or 1)
        by_key[key].gpu_hours += float(record.get("duration") or 0) / SECONDS_PER_HOUR * gpus
        by_key[key].cost_usd += float(record.get("total_cost") or 0.0)
    for service in services:
        for replica in service.get("replica_info") or ():
            name = str(replica.get("name"))
            key = model_key_of(name, lineup)
            launched_at = replica.get("launched_at")
            if key is None or name in reported or not isinstance(launched_at, int | float):
                continue
            if status_name(replica.get("status")) in _GONE_REPLICA:
                continue
            handle = replica.get("handle")
            resources = getattr(handle, "launched_resources", None)
            gpus = _gpus(getattr(resources, "accelerators", None))
            gpus *= int(getattr(handle, "launched_nodes", 1) or 1)
            hours = max(0.0, now_s - max(float(launched_at), window_start_s)) / SECONDS_PER_HOUR
            by_key[key].gpu_hours += hours * gpus
            by_key[key].unpriced_gpu_hours += hours * gpus
    for task in lineup:
        by_key[task.key].usage = usage.get(task.served_name, ModelUsage(0, 0, 0.0))
    return list(by_key.values())


def render(rows: Iterable[ModelCost], days: int) -> str:
    header = (
        "MODEL",
        "GPU_HOURS",
        "COST_USD",
        "REQUESTS",
        "BILLED",
        "REVENUE_USD",
        "REQ/H",
        "BREAK_EVEN_USD/REQ",
    )
    hours = days * 24
    table: list[tuple[str, ...]] = [header]
    for row in rows:
        break_even = row.break_even_usd
        if break_even is not None:
            even = f"{break_even:.6f}"
        elif row.unpriced_gpu_hours:
            even = "cost unknown"
        else:
            even = "no requests" if row.cost_usd else "-"
        cost = f"{row.cost_usd:.2f}" + ("+?" if row.unpriced_gpu_hours else "")
        table.append(
            (
                row.model,
                f"{row.gpu_hours:.1f}",
                cost,
                str(row.usage.requests),
                str(row.usage.billed_requests),
                f"{row.usage.revenue_usd:.2f}",
                f"{row.usage.requests / hours:.1f}" if hours else "-",
                even,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in table
    )


def window_start(now_s: float, days: int) -> float:
    return now_s - days * 24 * SECONDS_PER_HOUR if days > 0 else -math.inf
