"""`fleet sync`: SkyPilot's view of the fleet -> the backends document, never for the worse.

One pass lists UP plain clusters (`sky.status` + `sky.endpoints`) and the READY replicas of the
active versions of SkyServe services (`sky.serve.status`) that follow the naming convention,
and writes the document when that set changed. A pass never makes the document worse than the
last good one:

- a failed SkyPilot call (API server down, serve controller INIT or unreachable) writes
  nothing; the edges keep the backends they have;
- a pass that would shrink the document by more than `max_drop_share` of its backends at once
  is refused unless `force` (a blip that reads as "everything is gone" must not empty edges);

and either is recorded beside the document (`sync_state`) and logged. With `--watch`, a
`Keeper` also keeps plain clusters warm (see `keeper`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import structlog

from warmgate.backends.fleet.discovery import cluster_backends, controller_urls, replica_backends
from warmgate.backends.fleet.document import (
    FleetBackend,
    FleetDocument,
    next_document,
    read_document,
    write_document,
)
from warmgate.backends.fleet.keeper import Keeper
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.skypilot import FleetError, SkyPilot
from warmgate.backends.fleet.sync_state import SyncState, write_state

log = structlog.get_logger("warmgate.fleet")

Clock = Callable[[], datetime]

# A pass may shrink the document by at most this share of its backends unless forced.
DEFAULT_MAX_DROP_SHARE = 0.25
# SkyServe drains a replica it scales down for this long before tearing it down
# (`_DEFAULT_DRAIN_SECONDS` in sky/serve/replica_managers.py): a watch must sync well within it
# so that the replica leaves the edges' documents before it goes.
SKYSERVE_DRAIN_S = 120.0


class SyncRefusedError(FleetError):
    """The pass kept the last good document; the message says why."""


@dataclass(frozen=True, slots=True)
class Discovery:
    backends: list[FleetBackend]
    controllers: dict[str, str]
    records: list[object]


@dataclass
class Syncer:
    """One `fleet sync` pass, and the `--watch` loop around it."""

    sky: SkyPilot
    lineup: Lineup
    out: Path
    api_key_env: str | None
    clock: Clock
    keeper: Keeper | None = None
    max_drop_share: float = DEFAULT_MAX_DROP_SHARE
    force: bool = False
    # Replaces the controllers' address in the document (a forward to SkyServe's controller).
    controller_host: str | None = None

    def discover(self) -> Discovery:
        records = self.sky.clusters(refresh=self.keeper is not None)
        backends = cluster_backends(records, self.sky.endpoint, self.lineup, self.api_key_env)
        services = self.sky.services()
        backends += replica_backends(services, self.lineup, self.api_key_env)
        controllers = controller_urls(services, self.lineup, self.controller_host)
        return Discovery(backends, controllers, records)

    def run_once(self) -> FleetDocument | None:
        """Returns the document written, or None when it was already current. Raises
        `SyncRefusedError` when the last good document was kept (recorded and logged first)."""
        previous = read_document(self.out)
        try:
            found = self.discover()
        except Exception as exc:  # noqa: BLE001 - whatever SkyPilot raised, keep the document
            self._refuse(previous, f"SkyPilot: {type(exc).__name__}: {exc}", exc)
        self._check_drop(previous, found.backends)
        document = next_document(previous, found.backends, self.clock(), found.controllers)
        if document is not None:
            write_document(self.out, document)
            log.info(
                "backends_document_written",
                path=str(self.out),
                version=document.version,
                backends=len(document.backends),
            )
        current = document or previous
        self._record(current, problem=None)
        if self.keeper is not None:
            self.keeper.tend(found.records, found.backends)
        return document

    def _check_drop(self, previous: FleetDocument | None, backends: list[FleetBackend]) -> None:
        if previous is None or self.force or not previous.backends:
            return
        before, after = len(previous.backends), len(set(backends))
        dropped = (before - after) / before
        if dropped > self.max_drop_share:
            self._refuse(
                previous,
                f"refused to drop {before - after} of {before} backends in one pass "
                f"(more than {self.max_drop_share:.0%}); run `warmgate fleet sync --force` "
                "if they are really gone",
                None,
            )

    def _refuse(
        self, previous: FleetDocument | None, problem: str, cause: Exception | None
    ) -> NoReturn:
        self._record(previous, problem=problem)
        log.error(
            "backends_document_kept",
            path=str(self.out),
            version=None if previous is None else previous.version,
            problem=problem,
        )
        raise SyncRefusedError(f"{self.out}: kept as it was: {problem}") from cause

    def _record(self, document: FleetDocument | None, *, problem: str | None) -> None:
        stamp = self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_state(
            self.out,
            SyncState(
                checked_at=stamp,
                current=problem is None,
                document_version=None if document is None else document.version,
                backends=0 if document is None else len(document.backends),
                problem=problem,
            ),
        )

    def watch(self, interval_s: float, stop: threading.Event) -> None:
        """Sync every `interval_s` until `stop` is set. A pass that kept the document is logged
        (by `run_once`) and the next one runs on time: the watch must outlive it."""
        while True:
            try:
                self.run_once()
            except SyncRefusedError:
                pass  # recorded and logged; the next pass tries again
            except Exception as exc:  # noqa: BLE001 - the watch outlives any failed pass
                log.error("sync_failed", error_type=type(exc).__name__, error=str(exc))
            if stop.wait(interval_s):
                return
