"""Active health probes: every `interval_s`, one GET of the probe path on every backend.

A verdict per probe: 200 passes; 503 (starting, draining) and other statuses, connection
errors and timeouts fail. A 503 ejects at once (SGLang says it is starting or draining: stop
routing on the first one); other failures eject after `eject_after` in a row, and `readmit_after`
passes in a row bring it back (in slow start). One exception keeps busy backends in: a probe
that timed out after the connection was made is inconclusive (BUSY) when the backend is busy:
SGLang's /health_generate answers only once the engine sends some request an output, which a
long prefill holds back (its /v1/loads still answers between prefill chunks). Busy means
either our requests are in flight on a backend that showed a sign of life within
`busy_grace_s` (a chunk, a load report, a passed probe), or its own load report, read within
the load freshness window, shows running or waiting requests (someone else's long prefill);
the latter holds for at most `busy_grace_s` of probes in a row without a pass. A refused
connection, a connect timeout or a 5xx fail at once as before.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import NamedTuple, Protocol

import httpx

from warmgate.proxy.routing.member import HealthState, Member
from warmgate.proxy.settings import HealthSettings


class ProbedPool(Protocol):
    """What the checker needs of the pool (`proxy.routing.pool.Pool`): its members, and the
    one way their health changes."""

    load_fresh_s: float

    def members(self) -> list[Member]: ...

    def set_health(self, member: Member, state: HealthState, *, readmitted: bool) -> None: ...

    def notify(self) -> None: ...


class Verdict(enum.Enum):
    PASS = "pass"  # noqa: S105  # a probe verdict, not a password
    FAIL = "fail"
    BUSY = "busy"  # inconclusive: queued behind work that is making progress


class ProbeResult(NamedTuple):
    verdict: Verdict
    reason: str | None = None
    not_ready: bool = False  # 503: starting or draining, a definite answer


class HealthChecker:
    def __init__(
        self,
        pool: ProbedPool,
        settings: HealthSettings,
        client: httpx.AsyncClient,
        clock: Callable[[], float],
        *,
        rtt_smoothing: float = 0.3,
    ) -> None:
        self._pool = pool
        self._rtt_smoothing = rtt_smoothing
        self._settings = settings
        self._client = client
        self._clock = clock
        self._kick = asyncio.Event()
        self._last_pass: dict[str, float] = {}
        self._busy_since: dict[str, float] = {}  # first BUSY since the last pass
        self.rounds = 0

    def kick(self) -> None:
        """Probe now rather than at the next interval (new backends were added)."""
        self._kick.set()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._settings.interval_s):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()
            await self.probe_all()

    async def probe_all(self) -> None:
        members = [m for m in self._pool.members() if not m.retired]
        async with asyncio.TaskGroup() as group:
            for member in members:
                group.create_task(self.check(member))
        self.rounds += 1
        self._pool.notify()  # a finished round is a change waiters may look at

    async def check(self, member: Member) -> ProbeResult:
        result = await self.probe(member)
        self.apply(member, result)
        return result

    async def probe(self, member: Member) -> ProbeResult:  # noqa: PLR0911  # one per verdict
        backend = member.backend
        headers = {"Authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}
        started = self._clock()
        try:
            response = await self._client.get(
                backend.url + self._settings.probe_path,
                headers=headers,
                timeout=self._settings.timeout_s,
            )
            await response.aclose()
            # any answer is a round trip: its time (network and probe work) ranks regions
            member.record_rtt(self._clock() - started, self._rtt_smoothing)
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
            if self._busy(member, started):
                return ProbeResult(Verdict.BUSY, "probe timed out behind in-flight work")
            if self._loaded(member, started):
                return ProbeResult(Verdict.BUSY, "probe timed out behind the backend's own load")
            return ProbeResult(Verdict.FAIL, "timeout")
        except httpx.TimeoutException:
            return ProbeResult(Verdict.FAIL, "connect timeout")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return ProbeResult(Verdict.FAIL, type(exc).__name__)
        if response.status_code == 200:
            self._last_pass[backend.id] = self._clock()
            return ProbeResult(Verdict.PASS)
        if response.status_code == 503:
            return ProbeResult(Verdict.FAIL, "not ready (503)", not_ready=True)
        return ProbeResult(Verdict.FAIL, f"status {response.status_code}")

    def _busy(self, member: Member, started: float) -> bool:
        if member.outstanding == 0:
            return False
        signs = [member.last_progress_at, self._last_pass.get(member.backend.id, float("-inf"))]
        if member.remote is not None:
            signs.append(member.remote.read_at)
        return started - max(signs) <= self._settings.busy_grace_s

    def _loaded(self, member: Member, started: float) -> bool:
        """The backend's own recent load report shows work (another edge's, direct traffic)."""
        remote = member.remote
        if remote is None or remote.requests == 0:
            return False
        if self._clock() - remote.read_at > self._pool.load_fresh_s:
            return False  # its /v1/loads has not answered lately either
        since = self._busy_since.get(member.backend.id, started)
        return started - since <= self._settings.busy_grace_s

    def apply(self, member: Member, result: ProbeResult) -> None:
        """Count the verdict and eject or readmit the backend through the pool."""
        member.probes += 1
        settings = self._settings
        if result.verdict is Verdict.BUSY:
            member.last_probe_error = result.reason
            self._busy_since.setdefault(member.backend.id, self._clock())
            return
        if result.verdict is Verdict.PASS:
            self._busy_since.pop(member.backend.id, None)
            member.consecutive_failures = 0
            member.consecutive_successes += 1
            member.last_probe_error = None
            if member.health is HealthState.UNKNOWN:
                self._pool.set_health(member, HealthState.HEALTHY, readmitted=False)
            elif (
                member.health is HealthState.EJECTED
                and member.consecutive_successes >= settings.readmit_after
            ):
                self._pool.set_health(member, HealthState.HEALTHY, readmitted=True)
            return
        member.consecutive_successes = 0
        member.consecutive_failures += 1
        member.last_probe_error = result.reason
        if member.health is not HealthState.EJECTED and (
            result.not_ready or member.consecutive_failures >= settings.eject_after
        ):
            self._pool.set_health(member, HealthState.EJECTED, readmitted=False)
