"""Limits shared by every limiter process (workers, edges, regions) through Redis, without a
round trip per request (what each limit guarantees: the package's docstring).

Each process leases units of a key's limits from Redis and admits requests from what it holds:
a request waits for Redis only when its process holds none (then every request waiting beside
it shares one round trip), and a process asks for more when half of its spares are used.
Redis counts units when it grants them, and never grants past a limit. Concurrency slots are
leased for `lease_ttl_s` and renewed while their requests live. When Redis fails, requests
are decided on local shares at once, the state change is logged once, counted in `health()`,
and Redis is probed every `probe_interval_s` until it answers. A request that must wait for
Redis waits at most `store_timeout_s` for a free connection and as long for the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable

from warmgate.proxy.keys.key import Key
from warmgate.proxy.limits.admission import Admission
from warmgate.proxy.limits.grants import KeyGrants, Tally, Waiter
from warmgate.proxy.limits.health import EventLog, HealthTracker, LimiterHealth, StructlogEvents
from warmgate.proxy.limits.limit_store import LimitStore, StoreUnavailableError
from warmgate.proxy.limits.policy import (
    Refusal,
    WindowClock,
    Windows,
    has_limits,
    ratelimit_headers,
    refusal_error,
    with_default_rpm,
)

KEY_PREFIX = "warmgate:limits"
DEFAULT_LEASE_TTL_S = 10.0
DEFAULT_PROBE_INTERVAL_S = 1.0
DEFAULT_STORE_TIMEOUT_S = 1.0
DEFAULT_MAX_CONNECTIONS = 32
# Renewals per lease: a holding survives two lost renewals in a row.
RENEWALS_PER_LEASE = 3
# After an outage, local caps hold this many probe intervals: every process has found Redis
# back by then and recorded what it admitted meanwhile.
SETTLE_PROBES = 2
# A process stays counted in the registry this many leases after its last heartbeat. Counting
# one that died only makes local shares smaller; missing one that lives (a late heartbeat)
# would make them too large, so the registry errs on the long side.
REGISTRY_LEASES = 3


class RedisLimiter:
    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        prefix: str = KEY_PREFIX,
        default_rpm: int | None = None,
        lease_ttl_s: float = DEFAULT_LEASE_TTL_S,
        probe_interval_s: float = DEFAULT_PROBE_INTERVAL_S,
        store_timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        local_share: float | None = None,
        worker_count: int = 1,
        process_id: str | None = None,
        events: EventLog | None = None,
    ) -> None:
        """`clock` gives the wall time of windows and leases (the same on every process);
        `sleep` paces the background renewals (a test steps them with `maintain()` instead);
        `local_share` is the part of each limit this process enforces when Redis is out (None:
        1/N, N = live processes, counted from `worker_count` until Redis was first heard)."""
        self._url = url
        self._clock = clock
        self._sleep = sleep
        self._prefix = prefix
        self._default_rpm = default_rpm
        self._lease_ttl_s = lease_ttl_s
        self._renew_interval_s = lease_ttl_s / RENEWALS_PER_LEASE
        self._probe_interval_s = probe_interval_s
        self._store_timeout_s = store_timeout_s
        self._max_connections = max_connections
        self._local_share = local_share
        self._process_id = process_id or os.urandom(8).hex()
        self._health = HealthTracker(events or StructlogEvents())
        self._health.processes = max(1, worker_count)
        self._store: LimitStore | None = None
        self._grants: dict[str, KeyGrants] = {}
        self._windows = WindowClock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._maintainer: asyncio.Task[None] | None = None
        # After an outage: when every process has had time to find Redis back (its probe)
        # and tell it what it admitted on local shares, so the windows' local caps can go.
        self._local_caps_until: float | None = None

    def __repr__(self) -> str:
        return "RedisLimiter()"  # the URL may carry a password

    # Lifecycle.

    async def start(self) -> None:
        self._store = LimitStore(
            self._url,
            prefix=self._prefix,
            timeout_s=self._store_timeout_s,
            max_connections=self._max_connections,
        )
        await self._heartbeat()  # unreachable: start on local shares, logged once
        self._maintainer = asyncio.get_running_loop().create_task(self._maintain())

    async def close(self) -> None:
        """Stop renewing, give back what this process holds (one try each), deregister."""
        maintainer, self._maintainer = self._maintainer, None
        if maintainer is not None:
            maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintainer
        await self.settle()
        store, self._store = self._store, None
        if store is None:
            return
        if self._health.reachable:
            for key_id, grants in list(self._grants.items()):
                if grants.holds_grants():
                    self._exchange_soon(key_id, grants, keep_spares=False)
            await self.settle()
            with contextlib.suppress(StoreUnavailableError):
                await store.leave(self._process_id)
        await store.close()

    async def settle(self) -> None:
        """Wait until every exchange under way has ended (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def health(self) -> LimiterHealth:
        return self._health.snapshot()

    # The request path.

    async def admit(self, key: Key, model: str) -> Admission:
        key = with_default_rpm(key, self._default_rpm)
        if not has_limits(key):
            return Admission([])
        now = self._clock()
        if self._local_caps_until is not None:
            self._expire_local_caps(now)
        windows = self._windows.at(now, key.quota_period)
        grants = self._grants.get(key.id)
        if grants is None:
            grants = self._grants[key.id] = KeyGrants(key, windows)
        grants.refresh(key, windows)
        grants.last_admit_s = now
        if grants.may_skip_redis():
            degraded = not self._health.reachable
            refusal = grants.refusal(self._share() if degraded else None)
            if refusal is None:
                admission = self._admitted(grants, key)
                if degraded:
                    self._health.degraded_admitted += 1
                elif grants.runs_low(self._health.processes) and not grants.exchanging:
                    self._exchange_soon(key.id, grants, keep_spares=True)
                return admission
            if degraded:
                self._health.degraded_refused += 1
                raise refusal_error(refusal, key, windows, grants.counters())
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        grants.waiters.append(Waiter(future, key))
        self._health.waits += 1
        if not grants.exchanging:
            self._exchange_soon(key.id, grants, keep_spares=True)
        try:
            return await future
        except asyncio.CancelledError:
            # The client left: a slot handed over just before gives itself back.
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().release()
            raise

    def _admitted(self, grants: KeyGrants, key: Key) -> Admission:
        """Admit a request in the tallies' windows (those of now: see `_roll`)."""
        grants.take()
        headers = ratelimit_headers(key, grants.windows, grants.counters())
        slots = grants.slots
        if slots is None:
            return Admission(headers)
        key_id = key.id
        return Admission(headers, lambda: self._release(key_id, grants, slots))

    def _release(self, key_id: str, grants: KeyGrants, slots: Tally) -> None:
        slots.release()
        if not grants.holds_extra(self._health.processes):
            return
        if grants.exchanging or not self._health.reachable or self._store is None:
            grants.dirty = True  # given back after the exchange under way, or once Redis is back
        else:
            self._exchange_soon(key_id, grants, keep_spares=True)

    def _share(self) -> float:
        if self._local_share is not None:
            return self._local_share
        return 1.0 / self._health.processes

    # Exchanges with Redis, one at a time per key, each owned by this limiter.

    def _exchange_soon(self, key_id: str, grants: KeyGrants, *, keep_spares: bool) -> None:
        grants.exchanging = True
        task = asyncio.get_running_loop().create_task(
            self._exchange(key_id, grants, keep_spares=keep_spares)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _exchange(self, key_id: str, grants: KeyGrants, *, keep_spares: bool) -> None:
        try:
            while True:
                self._roll(grants, grants.windows)  # units of an ended window are no use
                self._admit_from_stock(grants)
                waiting = list(grants.waiters)
                grants.waiters.clear()
                if not await self._exchange_once(key_id, grants, waiting, keep_spares):
                    # Redis is out: the requests that queued meanwhile are decided now too.
                    queued = list(grants.waiters)
                    grants.waiters.clear()
                    self._decide_locally(grants, queued)
                    break
                if not grants.waiters and not grants.dirty:
                    break
        finally:
            grants.exchanging = False
            grants.waiters_in_exchange = False

    def _admit_from_stock(self, grants: KeyGrants) -> None:
        """Requests that queued behind an exchange take units it brought, in order."""
        while grants.waiters and grants.refusal(None) is None:
            self._answer(grants, grants.waiters.popleft())

    async def _exchange_once(
        self, key_id: str, grants: KeyGrants, waiting: list[Waiter], keep_spares: bool
    ) -> bool:
        """One round trip; False when Redis could not be reached (the waiting requests are
        then decided on local shares)."""
        store = self._store
        if store is None or not self._health.reachable:
            self._decide_locally(grants, waiting)
            grants.dirty = True
            return False
        local = grants.local_room()
        if local is not None and len(waiting) > local[0]:
            # Beyond this window's local cap: refused without asking Redis for units they
            # could not use (see Tally.local_cap).
            waiting, beyond = waiting[: local[0]], waiting[local[0] :]
            self._refuse(grants, beyond, local[1])
        now = self._clock()
        planned_windows = grants.windows
        planned = grants.plan(len(waiting), self._health.processes, keep_spares=keep_spares)
        grants.dirty = False
        grants.waiters_in_exchange = bool(waiting)
        try:
            admitted, answers = await store.exchange(
                key_id,
                planned_windows,
                now=now,
                process_id=self._process_id,
                waiting=len(waiting),
                planned=planned,
                lease_ttl_s=self._lease_ttl_s,
            )
        except StoreUnavailableError as exc:
            self._health.failed(str(exc), local_share=self._share())
            self._decide_locally(grants, waiting)
            grants.dirty = True
            return False
        finally:
            grants.waiters_in_exchange = False
        self._health.exchanges += 1
        if self._health.answered():
            self._reconcile_all()
        refusal = grants.record_answer(planned, answers, len(waiting))
        if self._roll(grants, planned_windows):
            # Units of a window that ended while they travelled: the requests go again, in
            # the window they are decided in.
            grants.waiters.extendleft(reversed(waiting))
            return True
        for waiter in waiting[:admitted]:
            self._answer(grants, waiter)
        if refusal is not None:
            self._refuse(grants, waiting[admitted:], refusal)
        if grants.holds_extra(self._health.processes):
            grants.dirty = True
        return True

    def _roll(self, grants: KeyGrants, since: Windows) -> bool:
        """Move the tallies to the windows of now; True when a minute or quota period of
        theirs has ended since `since`."""
        now = self._windows.at(self._clock(), grants.key.quota_period)
        ended = (grants.rpm is not None and now.minute != since.minute) or (
            grants.quota is not None and now.quota_label != since.quota_label
        )
        grants.refresh(grants.key, now)
        return ended

    def _answer(self, grants: KeyGrants, waiter: Waiter) -> None:
        """Admit a waiting request, unless its client left (its units stay in stock)."""
        if not waiter.future.done():
            waiter.future.set_result(self._admitted(grants, waiter.key))

    def _refuse(self, grants: KeyGrants, waiting: list[Waiter], refusal: Refusal) -> None:
        for waiter in waiting:
            if not waiter.future.done():
                waiter.future.set_exception(
                    refusal_error(refusal, waiter.key, grants.windows, grants.counters())
                )

    def _decide_locally(self, grants: KeyGrants, waiting: list[Waiter]) -> None:
        self._roll(grants, grants.windows)  # a failed call may have outlasted its window
        share = self._share()
        for waiter in waiting:
            if waiter.future.done():
                continue
            refusal = grants.refusal(share)
            if refusal is None:
                self._health.degraded_admitted += 1
                self._answer(grants, waiter)
            else:
                self._health.degraded_refused += 1
                waiter.future.set_exception(
                    refusal_error(refusal, waiter.key, grants.windows, grants.counters())
                )

    # Maintenance: the registry heartbeat (the probe while Redis is out), renewals, returns.

    async def _maintain(self) -> None:
        while True:
            await self._sleep(
                self._renew_interval_s if self._health.reachable else self._probe_interval_s
            )
            await self.maintain()

    async def maintain(self) -> None:
        """One round of what runs in the background: heartbeat, then each key's exchange if
        it holds slots to renew, spares of an idle key to give back, or a record to fix."""
        if not await self._heartbeat():
            return
        now = self._clock()
        self._expire_local_caps(now)
        for key_id, grants in list(self._grants.items()):
            if grants.exchanging:
                continue
            # Units of a window that has ended are worth nothing: forget them, not return them.
            grants.refresh(grants.key, self._windows.at(now, grants.key.quota_period))
            idle = now - grants.last_admit_s >= self._renew_interval_s
            if grants.dirty or (grants.slots is not None and grants.slots.mine > 0):
                self._exchange_soon(key_id, grants, keep_spares=not idle)
            elif idle and grants.holds_grants():
                self._exchange_soon(key_id, grants, keep_spares=False)
            elif idle and grants.idle():
                del self._grants[key_id]

    async def _heartbeat(self) -> bool:
        store = self._store
        if store is None:
            return False
        try:
            processes = await store.heartbeat(
                self._process_id, now=self._clock(), ttl_s=self._lease_ttl_s * REGISTRY_LEASES
            )
        except StoreUnavailableError as exc:
            self._health.failed(str(exc), local_share=self._share())
            return False
        self._health.processes = processes
        if self._health.answered():
            self._reconcile_all()
        return True

    def _expire_local_caps(self, now: float) -> None:
        until = self._local_caps_until
        if until is not None and now >= until:
            self._local_caps_until = None
            for grants in self._grants.values():
                grants.forget_local_caps()

    def _reconcile_all(self) -> None:
        """Redis is back: record what was admitted on local shares meanwhile."""
        self._local_caps_until = self._clock() + SETTLE_PROBES * self._probe_interval_s
        for grants in self._grants.values():
            grants.dirty = True
