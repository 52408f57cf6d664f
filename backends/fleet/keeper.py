"""Keeping plain clusters warm: SkyServe heals its own replicas, a plain cluster has nobody else.

Wanted: the clusters named by `keep` (model key -> count: `wg-<key>-c1..cN`) and every
convention-named cluster seen UP since the keeper started. Each round over `sky.status`:

- a wanted cluster that is missing or STOPPED is launched again where it ran (the cloud and
  region SkyPilot reported while it was UP; `infra` for one never seen), never anywhere;
- an UP cluster whose SGLang has failed `unhealthy_after` health probes in a row (the process
  died or hangs while the VM stays UP) has its jobs cancelled and its task run again;
- INIT clusters, and clusters whose launch or restart request is still running, are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import structlog

from warmgate.backends.fleet.discovery import field as record_field
from warmgate.backends.fleet.discovery import status_name
from warmgate.backends.fleet.document import FleetBackend
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.naming import ClusterName, parse_cluster_name
from warmgate.backends.fleet.skypilot import FleetError, SkyPilot

log = structlog.get_logger("warmgate.fleet")

# Statuses of a plain cluster that are not re-launched: running, or being launched.
_LEAVE_ALONE = frozenset({"UP", "INIT"})
HEALTH_PATH = "/health"  # the replica gate answers it without a key (SGLang's health, cached)
DEFAULT_PROBE_TIMEOUT_S = 10.0
DEFAULT_UNHEALTHY_AFTER = 3

# url -> whether SGLang answered its health check.
Probe = Callable[[str], bool]


class HealthProbe:
    """GET `<url>/health`; a 200 within `timeout_s` is healthy."""

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport)

    def __call__(self, url: str) -> bool:
        try:
            return self._client.get(f"{url}{HEALTH_PATH}").status_code == httpx.codes.OK
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._client.close()


@dataclass
class Keeper:
    sky: SkyPilot
    lineup: Lineup
    environ: Mapping[str, str]
    keep: Mapping[str, int] = field(default_factory=dict)
    # Where to launch a kept cluster that was never seen (CLOUD or CLOUD/REGION).
    infra: str | None = None
    probe: Probe | None = None
    unhealthy_after: int = DEFAULT_UNHEALTHY_AFTER
    wanted: set[ClusterName] = field(init=False)
    # Where each cluster ran, as `sky launch --infra` takes it.
    placed: dict[ClusterName, str] = field(init=False, default_factory=dict)
    pending: dict[ClusterName, str] = field(init=False, default_factory=dict)
    failures: dict[ClusterName, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for key in self.keep:
            self.lineup.get(key)
        self.wanted = {
            ClusterName(key, index)
            for key, count in self.keep.items()
            for index in range(1, count + 1)
        }

    def tend(self, records: Sequence[object], backends: Sequence[FleetBackend] = ()) -> list[str]:
        """One round over `sky.status` records and the backends found for them; returns the
        clusters (re-)launched or restarted."""
        statuses: dict[ClusterName, str] = {}
        for record in records:
            parsed = parse_cluster_name(str(record_field(record, "name")), self.lineup.keys())
            if parsed is None:
                continue
            statuses[parsed] = status_name(record_field(record, "status"))
            infra = _infra(record)
            if infra is not None:
                self.placed[parsed] = infra
        self.wanted |= {name for name, status in statuses.items() if status == "UP"}
        urls = {b.source.removeprefix("sky-cluster:"): b.url for b in backends}
        acted = []
        for name in sorted(self.wanted, key=str):
            status = statuses.get(name)
            if status == "INIT" or self._busy(name):
                continue
            if status == "UP":
                if self._unresponsive(name, urls.get(str(name))):
                    acted += self._act(name, restart=True, was="unresponsive")
                continue
            if status not in _LEAVE_ALONE:
                acted += self._act(name, restart=False, was=status or "missing")
        return acted

    def _busy(self, name: ClusterName) -> bool:
        request_id = self.pending.get(name)
        if request_id is None:
            return False
        if self.sky.request_finished(request_id):
            del self.pending[name]
            return False
        return True

    def _unresponsive(self, name: ClusterName, url: str | None) -> bool:
        if self.probe is None or url is None:
            return False
        if self.probe(url):
            self.failures.pop(name, None)
            return False
        self.failures[name] = self.failures.get(name, 0) + 1
        return self.failures[name] >= self.unhealthy_after

    def _act(self, name: ClusterName, *, restart: bool, was: str) -> list[str]:
        model = self.lineup.get(name.model_key)
        infra = self.placed.get(name, self.infra)
        try:
            task = self.sky.task(model, environ=self.environ, infra=infra)
        except FleetError as exc:
            log.error("relaunch_impossible", cluster=str(name), error=str(exc))
            return []
        if restart:
            self.pending[name] = self.sky.restart(task, str(name))
            self.failures.pop(name, None)
            log.warning("cluster_restarted", cluster=str(name), was=was)
        else:
            self.pending[name] = self.sky.launch(task, str(name), wait=False)
            log.warning("cluster_relaunched", cluster=str(name), was=was, infra=infra)
        return [str(name)]


def _infra(record: object) -> str | None:
    """`CLOUD/REGION` of a `sky.status` record, as `--infra` takes it."""
    cloud = record_field(record, "cloud")
    if not cloud:
        return None
    region = record_field(record, "region")
    return f"{str(cloud).lower()}/{region}" if region else str(cloud).lower()
