"""Active probes, load polling and the backends document, over an injected httpx transport."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.routing.conftest import FakeClock
from warmgate.backends.fleet.document import FleetBackend, FleetDocument, encode_document
from warmgate.proxy.routing import BackendSpec, Catalog, ModelEntry, Outcome, Pool
from warmgate.proxy.routing.health import Verdict
from warmgate.proxy.routing.member import HealthState, Member
from warmgate.proxy.settings import HealthSettings, RoutingSettings

pytestmark = pytest.mark.anyio

A, B = "http://10.0.0.1:30000", "http://10.0.0.2:30000"

Handler = Callable[[httpx.Request], httpx.Response]


class Backends:
    """What each fake backend answers, switchable per host while a test runs."""

    def __init__(self) -> None:
        self.health: dict[str, int | type[httpx.TransportError]] = {}
        self.loads: dict[str, httpx.Response] = {}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        host = f"http://{request.url.host}:{request.url.port}"
        if request.url.path == "/v1/loads":
            return self.loads.get(host, httpx.Response(404))
        answer = self.health.get(host, 200)
        if isinstance(answer, int):
            return httpx.Response(answer)
        raise answer("injected", request=request)


def health_of(member: Member) -> HealthState:
    return member.health


@asynccontextmanager
async def running(pool: Pool) -> AsyncIterator[Pool]:
    """The pool started (its probe, poll and watch tasks), closed however the test ends."""
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


def make_pool(
    clock: FakeClock,
    backends: Backends,
    *,
    document: str | None = None,
    poll_s: float = 0,
    **health: object,
) -> Pool:
    catalog = Catalog([ModelEntry(name="llama", served_name="llama", policy="round_robin")])
    settings = HealthSettings(eject_after=2, readmit_after=2, **health)  # type: ignore[arg-type]
    return Pool(
        catalog,
        [BackendSpec(model="llama", url=A, api_key_env="KEY_A"), BackendSpec(model="llama", url=B)],
        health=settings,
        routing=RoutingSettings(load_poll_interval_s=poll_s, backends_document=document),
        clock=clock,
        rng=random.Random(1),
        environ={"KEY_A": "sk-backend-a"},
        transport=httpx.MockTransport(backends),
    )


async def test_start_probes_once_and_only_ready_backends_take_traffic(clock: FakeClock) -> None:
    backends = Backends()
    backends.health[B] = 503
    pool = make_pool(clock, backends)
    assert not pool.ready()  # nothing is routed to before its first probe
    await pool.start()
    try:
        a, b = pool.members()
        assert health_of(a) is HealthState.HEALTHY
        assert health_of(b) is HealthState.EJECTED  # a 503 is a definite "not ready"
        assert b.last_probe_error == "not ready (503)"
        assert b.ejections == 0  # it never was in
        assert pool.ready()
        assert {pool.route("llama").backend.url for _ in range(4)} == {A}
        probe = next(r for r in backends.seen if r.url.host == "10.0.0.1")
        assert probe.url.path == "/health_generate"
        assert probe.headers["authorization"] == "Bearer sk-backend-a"
    finally:
        await pool.close()


async def test_failing_probes_eject_and_passing_probes_readmit_in_slow_start(
    clock: FakeClock,
) -> None:
    backends = Backends()
    async with running(make_pool(clock, backends)) as pool:
        checker = pool.health
        assert checker is not None
        a = pool.members()[0]
        backends.health[A] = httpx.ConnectError
        await checker.probe_all()
        assert health_of(a) is HealthState.HEALTHY  # one failure is not enough
        await checker.probe_all()
        assert health_of(a) is HealthState.EJECTED
        assert a.ejections == 1
        assert a.backend.id not in {m.backend.id for m in pool.snapshot.healthy["llama"]}
        backends.health[A] = 200
        await checker.probe_all()
        assert health_of(a) is HealthState.EJECTED  # one pass is not enough
        await checker.probe_all()
        assert health_of(a) is HealthState.HEALTHY
        assert a.readmitted_at == clock.now
        views = {v["url"]: v for v in pool.describe()}
        assert views[A]["slow_start"] is True
        assert views[A]["ejections"] == 1


async def test_a_probe_stuck_behind_a_long_prefill_does_not_eject_a_busy_backend(
    clock: FakeClock,
) -> None:
    backends = Backends()
    async with running(make_pool(clock, backends, busy_grace_s=60.0)) as pool:
        checker = pool.health
        assert checker is not None
        a = pool.members()[0]
        lease = pool.route("llama")  # a 128k-token prefill is running on A
        assert lease.backend.url == A
        backends.health[A] = httpx.ReadTimeout
        for _ in range(5):
            clock.advance(10.0)
            result = await checker.check(a)
            assert result.verdict is Verdict.BUSY
        assert health_of(a) is HealthState.HEALTHY
        # progress keeps it alive past the grace period...
        lease.progress()
        clock.advance(50.0)
        assert (await checker.check(a)).verdict is Verdict.BUSY
        # ...but a backend silent for longer than busy_grace_s is ejected like any other
        clock.advance(61.0)
        await checker.check(a)
        await checker.check(a)
        assert health_of(a) is HealthState.EJECTED
        lease.finish(Outcome.OK)


def busy_report(running: int, waiting: int = 0) -> httpx.Response:
    return httpx.Response(
        200, json={"loads": [{"num_running_reqs": running, "num_waiting_reqs": waiting}]}
    )


async def test_a_probe_stuck_behind_someone_elses_prefill_is_busy_while_the_load_shows_work(
    clock: FakeClock,
) -> None:
    backends = Backends()
    backends.loads[A] = busy_report(running=1, waiting=3)  # direct traffic, none of ours
    async with running(make_pool(clock, backends, poll_s=3600.0, busy_grace_s=60.0)) as pool:
        checker, poller = pool.health, pool.loads
        assert checker is not None
        assert poller is not None
        a = pool.members()[0]
        assert a.outstanding == 0
        backends.health[A] = httpx.ReadTimeout
        for _ in range(5):  # 50 s of timed-out probes, the load read fresh each round
            clock.advance(10.0)
            assert await poller.poll(a)
            result = await checker.check(a)
            assert result.verdict is Verdict.BUSY
            assert result.reason == "probe timed out behind the backend's own load"
        assert health_of(a) is HealthState.HEALTHY
        # bounded: past busy_grace_s of timeouts without a pass the backend is ejected
        verdicts = []
        for _ in range(4):
            clock.advance(10.0)
            assert await poller.poll(a)
            verdicts.append((await checker.check(a)).verdict)
        assert verdicts == [Verdict.BUSY, Verdict.BUSY, Verdict.FAIL, Verdict.FAIL]
        assert health_of(a) is HealthState.EJECTED


async def test_a_pass_restarts_the_busy_grace_of_a_loaded_backend(clock: FakeClock) -> None:
    backends = Backends()
    backends.loads[A] = busy_report(running=2)
    async with running(make_pool(clock, backends, poll_s=3600.0, busy_grace_s=60.0)) as pool:
        checker, poller = pool.health, pool.loads
        assert checker is not None
        assert poller is not None
        a = pool.members()[0]
        for answer in (httpx.ReadTimeout, 200, httpx.ReadTimeout, httpx.ReadTimeout):
            backends.health[A] = answer
            clock.advance(40.0)
            assert await poller.poll(a)
            assert (await checker.check(a)).verdict is not Verdict.FAIL
        assert health_of(a) is HealthState.HEALTHY


async def test_a_timeout_counts_as_a_failure_when_the_load_is_idle_stale_or_unknown(
    clock: FakeClock,
) -> None:
    backends = Backends()
    backends.loads[A] = busy_report(running=0, waiting=0)
    async with running(make_pool(clock, backends, poll_s=3600.0)) as pool:
        checker, poller = pool.health, pool.loads
        assert checker is not None
        assert poller is not None
        a, b = pool.members()
        backends.health[A] = backends.health[B] = httpx.ReadTimeout
        assert await poller.poll(a)
        assert (await checker.check(a)).verdict is Verdict.FAIL  # idle: the probe is lost
        assert (await checker.check(b)).verdict is Verdict.FAIL  # no load report at all
        backends.loads[A] = busy_report(running=1)
        assert await poller.poll(a)
        clock.advance(pool.load_fresh_s + 1.0)  # the load poll has not answered since
        assert (await checker.check(a)).verdict is Verdict.FAIL


async def test_a_refused_connection_or_a_5xx_fails_at_once_even_under_load(
    clock: FakeClock,
) -> None:
    backends = Backends()
    backends.loads[A] = busy_report(running=4)
    async with running(make_pool(clock, backends, poll_s=3600.0)) as pool:
        checker, poller = pool.health, pool.loads
        assert checker is not None
        assert poller is not None
        a = pool.members()[0]
        assert await poller.poll(a)
        backends.health[A] = httpx.ConnectError
        assert (await checker.check(a)).verdict is Verdict.FAIL
        backends.health[A] = 500
        result = await checker.check(a)
        assert result.verdict is Verdict.FAIL
        assert result.reason == "status 500"
        assert health_of(a) is HealthState.EJECTED


async def test_a_probe_timeout_on_an_idle_backend_counts_as_a_failure(clock: FakeClock) -> None:
    backends = Backends()
    async with running(make_pool(clock, backends)) as pool:
        checker = pool.health
        assert checker is not None
        a = pool.members()[0]
        backends.health[A] = httpx.ReadTimeout
        assert (await checker.check(a)).verdict is Verdict.FAIL
        await checker.check(a)
        assert health_of(a) is HealthState.EJECTED


async def test_load_reports_raise_the_load_routing_sees(clock: FakeClock) -> None:
    backends = Backends()
    report = {
        "timestamp": 1.0,
        "loads": [
            {"dp_rank": 0, "num_running_reqs": 7, "num_waiting_reqs": 3, "token_usage": 0.5},
            {
                "dp_rank": 1,
                "num_running_reqs": 2,
                "num_waiting_reqs": 0,
                "token_usage": 0.7,
                "num_waiting_uncached_tokens": 4096,
            },
        ],
    }
    backends.loads[A] = httpx.Response(200, json=report)
    async with running(make_pool(clock, backends, poll_s=3600.0)) as pool:
        poller = pool.loads
        assert poller is not None
        await poller.poll_all()
        a, b = pool.members()
        assert a.remote is not None
        assert (a.remote.requests, a.remote.tokens, a.remote.token_usage) == (
            12,
            4096,
            0.7,
        )
        assert a.load(clock.now, 15.0) == 12
        assert a.work(clock.now, 15.0) == 4096.0
        assert b.remote is None  # 404: not asked again
        await poller.poll_all()
        assert (
            sum(1 for r in backends.seen if r.url.path == "/v1/loads" and r.url.host == "10.0.0.2")
            == 1
        )
        clock.advance(16.0)
        assert a.load(clock.now, 15.0) == 0  # a stale report no longer counts


def write_document(path: Path, version: int, urls: list[str]) -> None:
    document = {
        "version": version,
        "backends": [
            {
                "model": "llama",
                "url": url,
                "cloud": "aws",
                "region": "us-east-1",
                "accelerators": {"H100": 8},
                "source": "skyserve:llama",
            }
            for url in urls
        ],
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document))
    temporary.replace(path)


async def test_the_backends_document_is_loaded_at_start_and_reloaded_on_change(
    clock: FakeClock, tmp_path: Path
) -> None:
    backends = Backends()
    path = tmp_path / "backends.json"
    c, d = "http://10.0.0.3:30000", "http://10.0.0.4:30000"
    write_document(path, 1, [c])
    async with running(make_pool(clock, backends, document=str(path))) as pool:
        watcher = pool.document
        assert watcher is not None
        urls = {m.backend.url for m in pool.snapshot.healthy["llama"]}
        assert urls == {A, B, c}
        view = next(v for v in pool.describe() if v["url"] == c)
        assert (view["cloud"], view["accelerators"], view["source"]) == (
            "aws",
            "H100:8",
            "skyserve:llama",
        )
        assert not await watcher.check()  # unchanged
        write_document(path, 2, [d])
        assert await watcher.check()
        assert watcher.version == 2
        assert {m.backend.url for m in pool.snapshot.members["llama"]} == {A, B, d}
        path.write_text("{not json")
        assert not await watcher.check()
        assert watcher.error is not None
        assert {m.backend.url for m in pool.snapshot.members["llama"]} == {A, B, d}


async def test_a_503_probe_ejects_a_healthy_backend_at_once(clock: FakeClock) -> None:
    backends = Backends()
    async with running(make_pool(clock, backends)) as pool:
        checker = pool.health
        assert checker is not None
        a = pool.members()[0]
        backends.health[A] = 503  # SIGTERM: SGLang drains and answers 503
        await checker.check(a)
        assert health_of(a) is HealthState.EJECTED
        assert a.ejections == 1
        assert {pool.route("llama").backend.url for _ in range(4)} == {B}


@pytest.mark.parametrize("policy", ["least_outstanding", "cache_aware"])
async def test_a_backend_busy_with_another_edges_requests_gets_none_of_ours(
    clock: FakeClock, policy: str
) -> None:
    backends = Backends()
    report = {
        "loads": [{"num_running_reqs": 80, "num_waiting_reqs": 20, "num_used_tokens": 240_000}]
    }
    backends.loads[A] = httpx.Response(200, json=report)
    backends.loads[B] = httpx.Response(200, json={"loads": [{"num_running_reqs": 0}]})
    catalog = Catalog([ModelEntry(name="llama", served_name="llama", policy=policy)])  # type: ignore[arg-type]
    pool = Pool(
        catalog,
        [BackendSpec(model="llama", url=A), BackendSpec(model="llama", url=B)],
        routing=RoutingSettings(load_poll_interval_s=3600.0),
        clock=clock,
        rng=random.Random(2),
        transport=httpx.MockTransport(backends),
    )
    await pool.start()
    try:
        poller = pool.loads
        assert poller is not None
        await poller.poll_all()
        leases = [pool.route("llama") for _ in range(10)]
        # our own counts alone would alternate; the backends' view sends everything to B
        assert {lease.backend.url for lease in leases} == {B}
        for lease in leases:
            lease.finish(Outcome.OK)
    finally:
        await pool.close()


async def test_a_document_written_by_fleet_sync_is_what_the_pool_loads(
    clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "backends.json"
    fleet = FleetDocument(
        version=3,
        generated_at="2026-11-28T12:00:00Z",
        backends=(
            FleetBackend(
                model="llama",
                url="http://10.0.0.9:30000",
                api_key_env=None,
                cloud="Lambda",
                region="us-east-1",
                accelerators="H100:2",
                source="sky-serve:wg-llama/1",
            ),
        ),
    )
    path.write_bytes(encode_document(fleet))
    async with running(make_pool(clock, Backends(), document=str(path))) as pool:
        assert pool.document is not None
        assert pool.document.version == 3
        view = next(v for v in pool.describe() if v["url"] == "http://10.0.0.9:30000")
        assert (view["cloud"], view["region"], view["accelerators"], view["source"]) == (
            "Lambda",
            "us-east-1",
            "H100:2",
            "sky-serve:wg-llama/1",
        )
        assert view["health"] == "healthy"
