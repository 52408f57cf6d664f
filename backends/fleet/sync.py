"""`fleet sync`: SkyPilot's view of the fleet -> the backends document, and keeping it warm.

One pass lists UP plain clusters (`sky.status` + `sky.endpoints`) and READY SkyServe replicas
(`sky.serve.status`) that follow the naming convention, and writes the document when the set
of backends changed. With `--watch`, a `Keeper` also re-launches plain clusters that went
missing or were stopped: SkyServe heals its own replicas, a plain cluster has nobody else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog

from warmgate.backends.fleet.discovery import cluster_backends, replica_backends, status_name
from warmgate.backends.fleet.discovery import field as record_field
from warmgate.backends.fleet.document import (
    FleetBackend,
    FleetDocument,
    next_document,
    read_document,
    write_document,
)
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.naming import ClusterName, parse_cluster_name
from warmgate.backends.fleet.skypilot import FleetError, SkyPilot

log = structlog.get_logger("warmgate.fleet")

Clock = Callable[[], datetime]

# Statuses of a plain cluster that the keeper leaves alone: running, or being launched.
_LEAVE_ALONE = frozenset({"UP", "INIT"})


def discover(
    sky: SkyPilot, lineup: Lineup, records: list[object], api_key_env: str | None
) -> list[FleetBackend]:
    """Backends from `sky.status` records (endpoints looked up per UP cluster) and services."""
    backends = cluster_backends(records, sky.endpoint, lineup, api_key_env)
    backends += replica_backends(sky.services(), lineup, api_key_env)
    return backends


def publish(path: Path, backends: list[FleetBackend], clock: Clock) -> FleetDocument | None:
    """Write the document for `backends` unless the one at `path` already says the same;
    returns the document written, or None."""
    document = next_document(read_document(path), backends, clock())
    if document is None:
        return None
    write_document(path, document)
    log.info(
        "backends_document_written",
        path=str(path),
        version=document.version,
        backends=len(document.backends),
    )
    return document


@dataclass
class Keeper:
    """Re-launches the plain clusters that should be UP and are not.

    Wanted: the clusters named by `keep` (model key -> count: `wg-<key>-c1..cN`) and every
    convention-named cluster seen UP since the keeper started. A cluster that is missing or
    STOPPED is launched again; INIT (being launched) is left alone, and so is a cluster whose
    re-launch request is still running on the API server.
    """

    sky: SkyPilot
    lineup: Lineup
    environ: Mapping[str, str]
    keep: Mapping[str, int] = field(default_factory=dict)
    wanted: set[ClusterName] = field(init=False)
    pending: dict[ClusterName, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for key in self.keep:
            self.lineup.get(key)
        self.wanted = {
            ClusterName(key, index)
            for key, count in self.keep.items()
            for index in range(1, count + 1)
        }

    def tend(self, records: list[object]) -> list[str]:
        """One round over `sky.status` records; returns the clusters (re-)launched."""
        statuses: dict[ClusterName, str] = {}
        for record in records:
            parsed = parse_cluster_name(str(record_field(record, "name")), self.lineup.keys())
            if parsed is not None:
                statuses[parsed] = status_name(record_field(record, "status"))
        self.wanted |= {name for name, status in statuses.items() if status == "UP"}
        launched = []
        for name in sorted(self.wanted, key=str):
            if statuses.get(name) in _LEAVE_ALONE:
                if statuses.get(name) == "UP":
                    self.pending.pop(name, None)
                continue
            request_id = self.pending.get(name)
            if request_id is not None and not self.sky.request_finished(request_id):
                continue
            model = self.lineup.get(name.model_key)
            try:
                task = self.sky.task(model, environ=self.environ)
            except FleetError as exc:
                log.error("relaunch_impossible", cluster=str(name), error=str(exc))
                continue
            self.pending[name] = self.sky.launch(task, str(name), wait=False)
            log.warning("cluster_relaunched", cluster=str(name), was=statuses.get(name, "missing"))
            launched.append(str(name))
        return launched


@dataclass
class Syncer:
    """One `fleet sync` pass, and the `--watch` loop around it."""

    sky: SkyPilot
    lineup: Lineup
    out: Path
    api_key_env: str | None
    clock: Clock
    keeper: Keeper | None = None

    def run_once(self) -> FleetDocument | None:
        records = self.sky.clusters(refresh=self.keeper is not None)
        backends = discover(self.sky, self.lineup, records, self.api_key_env)
        document = publish(self.out, backends, self.clock)
        if self.keeper is not None:
            self.keeper.tend(records)
        return document

    def watch(self, interval_s: float, stop: threading.Event) -> None:
        """Sync every `interval_s` until `stop` is set. A failed pass (API server restarting,
        network) is logged and the next one runs on time: the watch must outlive it."""
        while True:
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - any failed pass must not end the watch
                log.error("sync_failed", error_type=type(exc).__name__, error=str(exc))
            if stop.wait(interval_s):
                return
