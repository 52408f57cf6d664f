"""One key's grants on one limiter process: what Redis granted it of each limit, what it used,
and the decisions taken from them without I/O.

A `Tally` follows one limit in one window (a minute, a quota period; concurrency has a single
window): `mine` is what Redis has recorded as granted to this process (requests per minute and
quota: units for the window; concurrency: slots held), `used` what this process has admitted
(concurrency: requests in flight), `total` what Redis had granted to all processes at the last
exchange. A request may go ahead without asking Redis while `used < mine` in every tally.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

from warmgate.proxy.keys.key import Key
from warmgate.proxy.limits.admission import Admission
from warmgate.proxy.limits.policy import Counters, Refusal, Windows
from warmgate.proxy.limits.shares import degraded_cap, spare_cap

# The order in which limits are checked, as `policy.refusal_for` does.
LIMITS = (Refusal.QUOTA, Refusal.CONCURRENCY, Refusal.RPM)
SLOTS_WINDOW = "slots"


class Tally:
    __slots__ = ("limit", "local_cap", "mine", "total", "used", "window")

    def __init__(self, window: int | str, limit: int) -> None:
        self.window = window
        self.limit = limit
        self.used = 0
        self.mine = 0
        self.total = 0
        # Set by the first decision on local shares in this window; it still bounds the
        # window after Redis is back, until every process has told Redis what it admitted.
        self.local_cap: int | None = None

    @property
    def stock(self) -> int:
        return self.mine - self.used

    def cap(self, local_share: float | None) -> int:
        """What may be in use: the grants (`local_share` None: Redis is reachable), else the
        grants plus the local share of what was left (`shares.degraded_cap`)."""
        if local_share is None:
            return self.mine if self.local_cap is None else min(self.mine, self.local_cap)
        if self.local_cap is None:
            self.local_cap = degraded_cap(self.limit, self.mine, self.total, local_share)
        return self.local_cap

    def release(self) -> None:
        """A request holding one of these concurrency slots ended."""
        if self.used > 0:
            self.used -= 1

    def estimated_use(self) -> int:
        """The key's use across all processes as far as this one knows: the others' grants at
        the last exchange and this process's own use (exact with a single process)."""
        return self.total - self.mine + self.used


class Waiter(NamedTuple):
    """An admission waiting for an exchange with Redis; answered with an Admission or a 429
    (whose headers show the windows it was decided in)."""

    future: asyncio.Future[Admission]
    key: Key


class TallyRequest(NamedTuple):
    """What one tally asks of Redis in an exchange (see limit_store's script)."""

    limit: int
    base: int  # units in use now: the ones to be recorded whatever the answer
    floor: int  # the least this process may keep: what it may use while the exchange runs
    keep: int  # spare units wanted beyond the ones in use and the waiting requests'


class TallyAnswer(NamedTuple):
    mine: int
    total: int
    room: int  # units that were free for this process's waiting requests


class Planned(NamedTuple):
    """One tally's part of an exchange: the tally it was planned for (a window that ends
    meanwhile keeps its own tally) and what it asks."""

    tally: Tally
    request: TallyRequest


class KeyGrants:
    """A key's tallies on this process, its admissions waiting for Redis, and its exchange
    with Redis (one at a time per key: requests that arrive meanwhile share the next one)."""

    __slots__ = (
        "dirty",
        "exchanging",
        "key",
        "last_admit_s",
        "quota",
        "rpm",
        "slots",
        "waiters",
        "waiters_in_exchange",
        "windows",
    )

    def __init__(self, key: Key, windows: Windows) -> None:
        self.key = key  # as last seen: its limits may change while the gateway runs
        self.windows = windows  # those of the tallies
        self.rpm: Tally | None = None
        self.quota: Tally | None = None
        self.slots: Tally | None = None
        self.waiters: deque[Waiter] = deque()
        self.exchanging = False
        # While an exchange answers waiting requests, no other request is admitted from the
        # tallies, so that the units Redis grants them are theirs when the answer comes.
        self.waiters_in_exchange = False
        self.dirty = False  # Redis's record differs from what this process wants recorded
        self.last_admit_s = 0.0

    def tallies(self) -> tuple[Tally | None, Tally | None, Tally | None]:
        """In the order of `LIMITS` (quota, concurrency, rpm)."""
        return self.quota, self.slots, self.rpm

    def refresh(self, key: Key, windows: Windows) -> None:
        """Follow the key's current limits and windows: a new window starts a fresh tally."""
        self.key, self.windows = key, windows
        self.rpm = _follow(self.rpm, windows.minute, key.rpm)
        quota = key.quota if key.quota_period is not None else None
        label = windows.quota_label
        self.quota = _follow(self.quota, label, quota) if label is not None else None
        self.slots = _follow(self.slots, SLOTS_WINDOW, key.max_concurrency)

    def may_skip_redis(self) -> bool:
        """Whether a request may be decided from the tallies now, ahead of nobody."""
        return not self.waiters and not self.waiters_in_exchange

    def refusal(self, local_share: float | None) -> Refusal | None:
        """None when one more request fits every tally's cap; else the first limit it breaks."""
        for refusal, tally in zip(LIMITS, self.tallies(), strict=True):
            if tally is not None and tally.used >= tally.cap(local_share):
                return refusal
        return None

    def take(self) -> None:
        for tally in self.tallies():
            if tally is not None:
                tally.used += 1

    def counters(self) -> Counters:
        quota, slots, rpm = self.tallies()
        return Counters(
            rpm_used=rpm.estimated_use() if rpm is not None else 0,
            concurrent=slots.estimated_use() if slots is not None else 0,
            quota_used=quota.estimated_use() if quota is not None else 0,
        )

    def runs_low(self, processes: int) -> bool:
        """Whether a tally that keeps spares has half of them or fewer left."""
        for tally in self.tallies():
            if tally is not None:
                spare = spare_cap(tally.limit, processes)
                if spare and tally.stock * 2 <= spare:
                    return True
        return False

    def holds_extra(self, processes: int) -> bool:
        """Whether a tally holds more spare units than this process may keep."""
        return any(
            tally is not None and tally.stock > spare_cap(tally.limit, processes)
            for tally in self.tallies()
        )

    def holds_grants(self) -> bool:
        """Whether Redis records for this process something to renew or give back:
        concurrency slots, or unused units of a quota or of this minute."""
        quota, slots, rpm = self.tallies()
        return (
            (slots is not None and slots.mine > 0)
            or (quota is not None and quota.stock > 0)
            or (rpm is not None and rpm.stock > 0)
        )

    def local_room(self) -> tuple[int, Refusal] | None:
        """How many more requests the local caps of this window allow, and the limit that
        binds, when a tally has one (see Tally.local_cap)."""
        least: tuple[int, Refusal] | None = None
        for refusal, tally in zip(LIMITS, self.tallies(), strict=True):
            if tally is not None and tally.local_cap is not None:
                room = max(0, tally.local_cap - tally.used)
                if least is None or room < least[0]:
                    least = (room, refusal)
        return least

    def forget_local_caps(self) -> None:
        for tally in self.tallies():
            if tally is not None:
                tally.local_cap = None

    def idle(self) -> bool:
        slots = self.slots
        return not self.waiters and not self.exchanging and (slots is None or slots.used == 0)

    def plan(self, waiting: int, processes: int, *, keep_spares: bool) -> list[Planned | None]:
        """What to ask Redis for `waiting` requests and the spares to keep, tally by tally (in
        `LIMITS` order). Spares given back stop being usable at once (`mine` drops to what is
        asked), so that this process never uses more than Redis records for it."""
        planned: list[Planned | None] = []
        for tally in self.tallies():
            if tally is None:
                planned.append(None)
                continue
            # No spares for a window lived through on local shares: Redis may not yet know
            # what the other processes admitted in it.
            spare = keep_spares and tally.local_cap is None
            keep = spare_cap(tally.limit, processes) if spare else 0
            wanted = tally.used + waiting + keep
            if wanted < tally.mine:
                # Given back as far as this process is concerned, even should the exchange
                # fail: the share of "what was left" then counts them for everyone.
                tally.total -= tally.mine - wanted
                tally.mine = wanted
            floor = max(tally.mine, tally.used)
            planned.append(Planned(tally, TallyRequest(tally.limit, tally.used, floor, keep)))
        return planned

    @staticmethod
    def record_answer(
        planned: list[Planned | None], answers: list[TallyAnswer | None], waiting: int
    ) -> Refusal | None:
        """Record Redis's answer in the planned tallies; the limit that left no room for all
        `waiting` requests, if one did (the one with the least room, the first on a tie)."""
        refused: Refusal | None = None
        least_room = waiting
        for refusal, part, answer in zip(LIMITS, planned, answers, strict=True):
            if part is None or answer is None:
                continue
            part.tally.mine, part.tally.total = answer.mine, answer.total
            if answer.room < least_room:
                least_room, refused = answer.room, refusal
        return refused


def _follow(tally: Tally | None, window: int | str, limit: int | None) -> Tally | None:
    if limit is None:
        return None
    if tally is None or tally.window != window:
        return Tally(window, limit)
    tally.limit = limit
    return tally
