"""Limiter processes as a fleet of edges would run them, for benchmarks/limits.py.

Each edge is a `RedisLimiter` that reaches Redis through a fault proxy of its own (so latency
and cuts apply to each link), runs on a clock whose minutes may be sped up (its leases,
renewals and probes keep their real-time lengths), and logs into a list.
The load is a number of clients per edge that ask for admission, hold the request a while,
release it, and ask again; what each admission was (edge, key, window, whether Redis was
reachable) is recorded for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from benchmarks.fault_proxy import FaultProxyThread
from warmgate.proxy.errors import GatewayError
from warmgate.proxy.keys import Key
from warmgate.proxy.limits import Admission, RedisLimiter
from warmgate.proxy.limits.redis_limiter import DEFAULT_LEASE_TTL_S, DEFAULT_PROBE_INTERVAL_S

# A client refused while Redis is out is answered at once; it waits this long before asking
# again (as the SDK's backoff would), so that refusals do not spin the event loop.
REFUSED_PAUSE_S = 0.005


class ScaledClock:
    """Wall time that reaches `start` `lead_s` real seconds from now (time to set edges up)
    and runs `scale` times faster than real time; `real_s()` counts real seconds from that
    moment. Its `sleep` is scaled the same way."""

    def __init__(self, start: float, scale: float = 1.0, *, lead_s: float = 0.0) -> None:
        self.start = start
        self.scale = scale
        self._zero = time.monotonic() + lead_s

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self._zero) * self.scale

    def real_s(self) -> float:
        """Real seconds since the clock showed `start` (negative before)."""
        return time.monotonic() - self._zero

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.scale)

    async def sleep_until_real(self, real_s: float) -> None:
        await asyncio.sleep(max(0.0, real_s - self.real_s()))


class EdgeEvents:
    """One edge's limiter log lines: (real seconds, event name)."""

    def __init__(self, clock: ScaledClock) -> None:
        self._clock = clock
        self.lines: list[tuple[float, str]] = []
        self.reachable_again = asyncio.Event()  # set when the store answers after an outage

    def event(self, name: str, **fields: object) -> None:
        self.lines.append((round(self._clock.real_s(), 3), name))
        if name == "limits_store_reachable":
            self.reachable_again.set()

    def warning(self, name: str, **fields: object) -> None:
        self.event(name, **fields)


@dataclass
class Edge:
    index: int
    limiter: RedisLimiter
    proxy: FaultProxyThread
    events: EdgeEvents
    in_flight: dict[str, int] = field(default_factory=dict)


@dataclass
class Admitted:
    edge: int
    key: str
    window: int  # the minute window the limiter decided in (see `decided_window`)
    degraded: bool  # decided while this edge could not reach Redis
    real_s: float


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def decided_window(admission: Admission, now: float) -> int:
    """The minute an admission was decided in. An admission that waited for Redis across the
    end of a minute was decided in one of two; its `x-ratelimit-reset-requests` (the time left
    in the minute it counts in, rounded up to a second) tells which."""
    reset = dict(admission.headers).get("x-ratelimit-reset-requests")
    if reset is None:
        return int(now // 60)
    reset_s = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(reset))
    return round((now + reset_s) / 60) - 1


@dataclass
class Tally:
    admitted: list[Admitted] = field(default_factory=list)
    refused: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # anything but a 429
    # Most requests of a key in flight at once, on all edges together, while Redis was out.
    peak_in_flight_cut: dict[str, int] = field(default_factory=dict)
    peak_in_flight_cut_per_edge: dict[str, list[int]] = field(default_factory=dict)

    def count_error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    def note_in_flight(self, key: str, per_edge: list[int]) -> None:
        peak = self.peak_in_flight_cut_per_edge.setdefault(key, [0] * len(per_edge))
        for index, value in enumerate(per_edge):
            peak[index] = max(peak[index], value)
        self.peak_in_flight_cut[key] = max(self.peak_in_flight_cut.get(key, 0), sum(per_edge))


@contextlib.asynccontextmanager
async def edges(
    count: int,
    *,
    redis: tuple[str, int],
    latency_s: float,
    clock: ScaledClock,
    prefix: str,
) -> AsyncIterator[list[Edge]]:
    """`count` edges sharing `prefix` in Redis, each behind its own proxy with `latency_s`
    added each way; all registered before this yields, so each knows the others."""
    made: list[Edge] = []
    with contextlib.ExitStack() as proxies:
        try:
            for index in range(count):
                proxy = proxies.enter_context(FaultProxyThread(*redis))
                proxy.delay(to_server_s=latency_s, to_client_s=latency_s)
                events = EdgeEvents(clock)
                limiter = RedisLimiter(
                    f"redis://127.0.0.1:{proxy.port}/0",
                    clock=clock,
                    sleep=clock.sleep,
                    prefix=prefix,
                    process_id=f"edge{index}",
                    events=events,
                    lease_ttl_s=DEFAULT_LEASE_TTL_S * clock.scale,
                    probe_interval_s=DEFAULT_PROBE_INTERVAL_S * clock.scale,
                )
                await limiter.start()
                made.append(Edge(index, limiter, proxy, events))
            for edge in made:
                await edge.limiter.maintain()
            yield made
        finally:
            for edge in made:
                await edge.limiter.close()


async def client(
    edge: Edge,
    fleet: Sequence[Edge],
    key: Key,
    *,
    clock: ScaledClock,
    hold_s: float,
    stop: asyncio.Event,
    cut: asyncio.Event,
    tally: Tally,
) -> None:
    """Ask for admission until `stop`; hold each admitted request `hold_s` (real)."""
    while not stop.is_set():
        try:
            admission = await edge.limiter.admit(key, "demo")
        except GatewayError as refused:
            if refused.status == 429:
                tally.refused += 1
            else:
                tally.count_error(type(refused).__name__)
            await asyncio.sleep(REFUSED_PAUSE_S)
            continue
        except Exception as exc:  # noqa: BLE001 a benchmark counts what a gateway would crash on
            tally.count_error(type(exc).__name__)
            await asyncio.sleep(REFUSED_PAUSE_S)
            continue
        degraded = edge.limiter.health().store == "unreachable"
        window = decided_window(admission, clock())
        tally.admitted.append(Admitted(edge.index, key.name, window, degraded, clock.real_s()))
        edge.in_flight[key.name] = edge.in_flight.get(key.name, 0) + 1
        if cut.is_set():
            tally.note_in_flight(key.name, [e.in_flight.get(key.name, 0) for e in fleet])
        try:
            await asyncio.sleep(hold_s)
        finally:
            edge.in_flight[key.name] -= 1
            admission.release()
