"""The pool: every backend of every model, their live state, and routing over a snapshot.

Membership and health are published as an immutable `PoolSnapshot` whenever they change; the
request path reads the current snapshot, filters members whose breaker is open or that were
already tried, keeps the edge's own region unless none there is usable (then the nearest other
region by probe RTT), and lets the model's policy choose. Everything runs on one event loop thread.

Lifecycle: `await pool.start()` loads the backends document, runs a first probe round and
starts the background tasks (probes, load polling, document watching) in a task group that
`await pool.close()` cancels and joins. `pool.drain()` refuses new routes (ShuttingDown) and
makes `ready()` false; `await pool.wait_idle(timeout_s)` waits for in-flight leases to finish.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import astuple
from types import MappingProxyType

import httpx
import msgspec

from warmgate.proxy.errors import NoHealthyBackend, ShuttingDown
from warmgate.proxy.observability.metrics import Family, Metrics
from warmgate.proxy.routing.backend import Backend, Outcome
from warmgate.proxy.routing.catalog import (
    BackendSpec,
    BackendUrlError,
    Catalog,
    CatalogError,
    MissingBackendKeyError,
    ModelEntry,
    materialize,
)
from warmgate.proxy.routing.controller_report import ControllerReport
from warmgate.proxy.routing.documents import DocumentWatcher
from warmgate.proxy.routing.events import EventLog, StructlogEvents
from warmgate.proxy.routing.health import HealthChecker
from warmgate.proxy.routing.lease import Lease
from warmgate.proxy.routing.load import LoadPoller
from warmgate.proxy.routing.member import HealthState, Member, member_gauges
from warmgate.proxy.routing.policies import Candidate, Policy, RouteHint, build_policy
from warmgate.proxy.settings import HealthSettings, RoutingSettings

# Enum members read per request, looked up once here: on Python 3.11 each `Enum.MEMBER`
# read goes through the enum metaclass's __getattr__ hook, a slow generic lookup.
_TIMED_OUT, _OK = Outcome.TIMEOUT_BEFORE_FIRST_BYTE, Outcome.OK

_NO_EXCLUDE: frozenset[str] = frozenset()
_NO_HINT = RouteHint()


class PoolSnapshot(msgspec.Struct, frozen=True):
    version: int
    members: Mapping[str, tuple[Member, ...]]  # model -> members (not retired)
    healthy: Mapping[str, tuple[Member, ...]]  # model -> members whose probes pass


def nearest_region(members: Sequence[Member]) -> list[Member]:
    """The members of the region whose best probe RTT is lowest (never probed: farthest)."""
    rtt: dict[str | None, float] = {}
    for member in members:
        seconds = member.rtt_s if member.rtt_s is not None else float("inf")
        region = member.backend.region
        rtt[region] = min(rtt.get(region, seconds), seconds)
    nearest = min(rtt, key=lambda region: (rtt[region], region or ""))
    return [m for m in members if m.backend.region == nearest]


class Pool:
    def __init__(
        self,
        catalog: Catalog,
        backends: Sequence[BackendSpec] = (),
        *,
        routing: RoutingSettings | None = None,
        health: HealthSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
        events: EventLog | None = None,
        eject_after_timeouts: int = 3,
        region: str | None = None,
    ) -> None:
        self.catalog = catalog
        # Consecutive first-byte timeouts that eject a backend as an outlier (`eject_outlier`).
        self._eject_after_timeouts = eject_after_timeouts
        self.region = region  # the edge's own; None: every backend is equally near
        self.events: EventLog = events or StructlogEvents()
        self.routing = routing or RoutingSettings()
        self.health_settings = health or HealthSettings()
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._rng = rng or random.Random()
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._transport = transport
        # a load report older than this is stale: routing ignores it, probes do not trust it
        self.load_fresh_s = 3 * max(self.routing.load_poll_interval_s, 1.0)
        self._policies: dict[str, Policy] = {
            entry.name: build_policy(entry.policy, self.routing, self._rng)
            for entry in catalog.entries
        }
        self._members: dict[str, Member] = {}
        self._retired: dict[int, Member] = {}
        self._static_ids: set[str] = set()
        self._document_ids: set[str] = set()
        self._in_flight = 0
        self._draining = False
        self._changed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.health: HealthChecker | None = None
        self.loads: LoadPoller | None = None
        self.document: DocumentWatcher | None = None
        self.controller_report: ControllerReport | None = None
        for spec in backends:
            entry = self._entry_for(spec)
            if entry is None:
                raise CatalogError(f"backend {spec.url} names unknown model {spec.model!r}")
            member = self._add(materialize(spec, entry, self._environ))
            self._static_ids.add(member.backend.id)
        self._snapshot = PoolSnapshot(0, MappingProxyType({}), MappingProxyType({}))
        self._publish()
        self.metrics.add_collector(self.collect)

    # ---- the request path -------------------------------------------------------------

    def resolve(self, name: str) -> ModelEntry:
        return self.catalog.resolve(name)

    def route(
        self, model: str, hint: RouteHint = _NO_HINT, exclude: frozenset[str] = _NO_EXCLUDE
    ) -> Lease:
        """A lease on the backend the model's policy picks among the routable ones."""
        if self._draining:
            raise ShuttingDown("The gateway is shutting down; retry on another instance")
        snapshot = self._snapshot
        members = snapshot.healthy.get(model)
        if members is None:
            name = self.catalog.resolve(model).name  # ModelNotFound for an unknown name
            members = snapshot.healthy.get(name, ())
            model = name
        chosen = [
            m
            for m in members
            if m.breaker.allows() and (not exclude or m.backend.id not in exclude)
        ]
        if not chosen:
            raise NoHealthyBackend(f"No healthy backend is available for model '{model}'")
        now = self._clock()
        fresh_after = now - self.load_fresh_s
        if self.region is not None:
            chosen = self._regional(chosen, fresh_after)
        if len(chosen) > 1:
            chosen = self._slow_start(chosen, now)
        candidates = [self._candidate(m, fresh_after) for m in chosen]
        member = chosen[self._policies[model].choose(model, candidates, hint)]
        trial = member.breaker.acquire()
        self._in_flight += 1
        service = member.backend.service
        if service is not None and self.controller_report is not None:
            self.controller_report.record(service)
        return Lease(
            member,
            weight=hint.weight,
            trial=trial,
            clock=self._clock,
            metrics=self.metrics,
            on_finish=self._finished,
        )

    @staticmethod
    def _candidate(member: Member, fresh_after: float) -> Candidate:
        """The member's load as the policy sees it (Member.load/work, inlined: hot path)."""
        remote = member.remote
        if remote is None or remote.read_at < fresh_after:
            return Candidate(member.backend.id, member.outstanding, member.outstanding_work)
        return Candidate(
            member.backend.id,
            max(member.outstanding, remote.requests),
            max(member.outstanding_work, float(remote.tokens)),
        )

    def _regional(self, chosen: list[Member], fresh_after: float) -> list[Member]:
        """The edge's own region's members (a backend without a region counts as local) that
        are not saturated; when there are none, the nearest other region's unsaturated ones;
        when every region is saturated, the own region's members, else the nearest region's."""
        own = self.region
        local = [m for m in chosen if m.backend.region in (None, own)]
        if len(local) == len(chosen):
            return chosen
        usage = self.routing.saturated_token_usage
        spare = [m for m in local if not m.saturated(fresh_after, usage)]
        if spare:
            return spare
        away = [m for m in chosen if m.backend.region not in (None, own)]
        spare = [m for m in away if not m.saturated(fresh_after, usage)]
        if spare:
            return nearest_region(spare)
        return local or nearest_region(away)

    def _slow_start(self, chosen: list[Member], now: float) -> list[Member]:
        """Drop each slow-starting member with the probability of the share it has not earned."""
        kept = chosen
        for member in chosen:
            if member.readmitted_at is None:
                continue
            share = member.share(now, self.health_settings)
            if share < 1.0 and len(kept) > 1 and self._rng.random() >= share:
                kept = [m for m in kept if m is not member]
        return kept

    def _finished(self, member: Member, outcome: Outcome, breaker_changed: bool) -> None:
        self._in_flight -= 1
        if outcome is _TIMED_OUT:
            member.consecutive_timeouts += 1
            if member.consecutive_timeouts >= self._eject_after_timeouts:
                self.eject_outlier(member)
        elif outcome is _OK:
            member.consecutive_timeouts = 0
        if member.retired and member.outstanding == 0:
            self._retired.pop(id(member), None)
        if breaker_changed:
            self.events.event(
                "backend_breaker",
                backend=member.backend.id,
                state=member.breaker.state.value,
                outcome=outcome.value,
            )
        if breaker_changed or self._in_flight == 0:
            self.notify()

    # ---- what the rest of the gateway asks ----------------------------------------------

    def models(self) -> list[ModelEntry]:
        """Models with at least one healthy backend (for /v1/models)."""
        healthy = self._snapshot.healthy
        return [entry for entry in self.catalog.entries if healthy.get(entry.name)]

    def ready(self) -> bool:
        return not self._draining and any(self._snapshot.healthy.values())

    @property
    def snapshot(self) -> PoolSnapshot:
        return self._snapshot

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def members(self) -> list[Member]:
        return list(self._members.values())

    def describe(self) -> list[dict[str, object]]:
        now = self._clock()
        views = [m.describe(now, self.load_fresh_s) for m in self._members.values()]
        views += [m.describe(now, self.load_fresh_s) for m in self._retired.values()]
        return views

    def collect(self) -> Iterable[Family]:
        """Gauges for /metrics: health, breaker and work in flight per backend."""
        return member_gauges([*self._members.values(), *self._retired.values()])

    # ---- membership ----------------------------------------------------------------------

    def _entry_for(self, spec: BackendSpec) -> ModelEntry | None:
        return self.catalog.find(spec.model)

    def _add(self, backend: Backend) -> Member:
        member = Member(backend, self.health_settings, self._clock)
        self._members[backend.id] = member
        return member

    def apply_document(self, specs: Sequence[BackendSpec]) -> tuple[list[str], list[str]]:
        """Make the document's backends the pool's dynamic members: (added ids, removed ids).

        A removed backend leaves the snapshot at once; its in-flight requests keep their
        lease and finish normally. Config backends are never removed by a document.
        """
        wanted: dict[str, Member] = {}
        for spec in specs:
            entry = self._entry_for(spec)
            if entry is None:
                self.events.warning(
                    "backend_document_unknown_model", model=spec.model, url=spec.url
                )
                continue
            try:
                backend = materialize(spec, entry, self._environ)
            except (MissingBackendKeyError, BackendUrlError) as exc:
                self.events.warning("backend_document_entry_skipped", error=str(exc))
                continue
            if backend.id in self._static_ids or backend.id in wanted:
                continue
            existing = self._members.get(backend.id)
            if existing is not None and astuple(existing.backend) == astuple(backend):
                wanted[backend.id] = existing
            else:
                wanted[backend.id] = Member(backend, self.health_settings, self._clock)
                if existing is not None:
                    # Same address, another key or labels (a replica relaunched with a rotated
                    # key): requests in flight finish on the old member; its health carries
                    # over so the replica is not out of routing until the next probe round.
                    wanted[backend.id].health = existing.health
        replaced = [bid for bid, m in wanted.items() if self._members.get(bid) not in (None, m)]
        added = [bid for bid in wanted if bid not in self._members]
        removed = [bid for bid in self._document_ids if bid not in wanted]
        for bid in removed + replaced:
            self._retire(self._members.pop(bid))
        for bid in added + replaced:
            self._members[bid] = wanted[bid]
        self._document_ids = set(wanted)
        if added or removed or replaced:
            self.events.event("backends_changed", added=added, removed=removed, replaced=replaced)
            self._publish()
            if self.health is not None and (added or replaced):
                self.health.kick()
        return added, removed

    def _retire(self, member: Member) -> None:
        member.retired = True
        for policy in self._policies.values():
            policy.forget(member.backend.id)
        if member.outstanding > 0:
            self._retired[id(member)] = member

    def set_health(self, member: Member, state: HealthState, *, readmitted: bool) -> None:
        """The health checker's verdict; publishes a new snapshot when routability changes."""
        if member.health is state:
            return
        if state is HealthState.EJECTED and member.health is HealthState.HEALTHY:
            member.ejections += 1
        member.health = state
        if readmitted:
            member.readmitted_at = self._clock()
            member.breaker.reset()
        self.events.event("backend_health", backend=member.backend.id, health=state.value)
        self._publish()

    def eject_outlier(self, member: Member) -> None:
        """Eject a backend that stopped answering requests (first-byte timeouts in a row), also
        where its probes are excused as busy: a wedged replica still looks busy. Passing probes
        readmit it, `readmit_after` of them counted from now. Without active probes nothing
        would readmit it: the circuit breaker alone keeps traffic away then."""
        member.consecutive_timeouts = 0
        if not self.health_settings.enabled or member.health is not HealthState.HEALTHY:
            return
        member.consecutive_successes = 0
        self.events.warning("backend_outlier_ejected", backend=member.backend.id)
        self.set_health(member, HealthState.EJECTED, readmitted=False)

    def _publish(self) -> None:
        members: dict[str, list[Member]] = {entry.name: [] for entry in self.catalog.entries}
        healthy: dict[str, list[Member]] = {entry.name: [] for entry in self.catalog.entries}
        for member in self._members.values():
            members[member.backend.model].append(member)
            if member.health is HealthState.HEALTHY:
                healthy[member.backend.model].append(member)
        self._snapshot = PoolSnapshot(
            self._snapshot.version + 1,
            MappingProxyType({k: tuple(v) for k, v in members.items()}),
            MappingProxyType({k: tuple(v) for k, v in healthy.items()}),
        )
        self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def next_change(self) -> None:
        """Wait for the next change of membership, health, breaker or a probe round."""
        await self._changed.wait()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        health = self.health_settings
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(health.timeout_s, connect=min(health.timeout_s, 2.0)),
            # A fresh connection per probe: a backend whose listener died must fail its probe
            # even while old keep-alive connections to it still answer.
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
            follow_redirects=False,
        )
        routing = self.routing
        if routing.backends_document:
            if routing.report_to_controllers:
                self.controller_report = ControllerReport(
                    interval_s=routing.controller_report_interval_s,
                    timeout_s=routing.controller_report_timeout_s,
                    transport=self._transport,
                )
            self.document = DocumentWatcher(
                routing.backends_document,
                self.apply_document,
                interval_s=routing.document_poll_interval_s,
                events=self.events,
                on_controllers=None
                if self.controller_report is None
                else self.controller_report.set_controllers,
            )
            await self.document.check()
        if health.enabled:
            self.health = HealthChecker(
                self, health, self._client, self._clock, rtt_smoothing=routing.rtt_smoothing
            )
            await self.health.probe_all()
        if routing.load_poll_interval_s > 0:
            self.loads = LoadPoller(self.members, routing, self._client, self._clock)
        if self.controller_report is not None:
            self.controller_report.start()
        self._runner = asyncio.create_task(self._run(), name="warmgate-pool")
        self._runner.add_done_callback(self._runner_done)

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        """A background task that dies stops probes for good: say so loudly."""
        if not task.cancelled() and task.exception() is not None:
            self.events.warning("routing_tasks_failed", error=repr(task.exception()))

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            if self.health is not None:
                group.create_task(self.health.run(), name="warmgate-health")
            if self.loads is not None:
                group.create_task(self.loads.run(), name="warmgate-loads")
            if self.document is not None:
                group.create_task(self.document.run(), name="warmgate-document")

    def drain(self) -> None:
        """Stop taking requests: `route` raises ShuttingDown and `ready()` turns false."""
        self._draining = True
        self.notify()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no lease is outstanding; False if the timeout came first."""
        try:
            async with asyncio.timeout(timeout_s):
                while self._in_flight > 0:
                    await self.next_change()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            try:
                await runner
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) is not None and current.cancelling():
                    raise
        if self.controller_report is not None:
            # Sends what was recorded since the last round, so a draining edge's last
            # requests still reach the autoscaler.
            await self.controller_report.close()
            self.controller_report = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.metrics.remove_collector(self.collect)
