"""The pool without I/O: leases, outstanding work, the circuit breaker, slow start, membership."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from tests.routing.conftest import FakeClock
from warmgate.proxy.errors import ModelNotFound, NoHealthyBackend, ShuttingDown
from warmgate.proxy.http.routes.admin_access import admin_authorized
from warmgate.proxy.routing import (
    Backend,
    BackendSpec,
    Catalog,
    ModelEntry,
    Outcome,
    Pool,
    RouteHint,
)
from warmgate.proxy.routing.breaker import BreakerState
from warmgate.proxy.routing.catalog import (
    BackendUrlError,
    CatalogError,
    MissingBackendKeyError,
    declare,
)
from warmgate.proxy.routing.member import HealthState, Member
from warmgate.proxy.settings import BackendSettings, HealthSettings, ModelSettings, RoutingSettings

CATALOG = Catalog(
    [
        ModelEntry(name="llama", served_name="meta/llama-70b", aliases=("llama-latest",)),
        ModelEntry(name="qwen", served_name="qwen", policy="least_outstanding"),
    ]
)
URLS = ["http://10.0.0.1:30000", "http://10.0.0.2:30000", "http://10.0.0.3:30000"]


def make_pool(
    clock: FakeClock,
    *,
    urls: list[str] = URLS,
    policy: str = "round_robin",
    **health: object,
) -> Pool:
    catalog = Catalog([ModelEntry(name="llama", served_name="llama", policy=policy)])  # type: ignore[arg-type]
    settings = HealthSettings(enabled=False, **health)  # type: ignore[arg-type]
    return Pool(
        catalog,
        [BackendSpec(model="llama", url=url) for url in urls],
        health=settings,
        routing=RoutingSettings(load_poll_interval_s=0),
        clock=clock,
        rng=random.Random(5),
    )


def state_of(member: Member) -> BreakerState:
    return member.breaker.state


def test_a_backend_key_never_appears_in_its_repr() -> None:
    backend = Backend(id="m@u", model="m", url="http://u", served_name="m", api_key="sk-secret")
    assert "sk-secret" not in repr(backend)
    assert "sk-secret" not in str(backend.describe())


def test_resolve_maps_aliases_and_rejects_unknown_models() -> None:
    assert CATALOG.resolve("llama-latest").name == "llama"
    assert CATALOG.resolve("llama").served_name == "meta/llama-70b"
    with pytest.raises(ModelNotFound) as caught:
        CATALOG.resolve("gpt-5")
    assert caught.value.status == 404
    assert caught.value.param == "model"


def test_declare_reads_models_from_settings_and_keys_from_the_environment() -> None:
    models = [
        msgspec_model("llama", ["http://a:1/"], api_key_env="LLAMA_KEY", price="0.002"),
    ]
    catalog, specs = declare(models)
    entry = catalog.resolve("llama")
    assert entry.price_per_request == Decimal("0.002")
    pool = Pool(catalog, specs, health=HealthSettings(enabled=False), environ={"LLAMA_KEY": "k1"})
    lease = pool.route("llama")
    assert lease.backend.api_key == "k1"
    assert lease.backend.url == "http://a:1"
    lease.finish(Outcome.OK)
    with pytest.raises(MissingBackendKeyError) as caught:
        Pool(catalog, specs, health=HealthSettings(enabled=False), environ={})
    assert "LLAMA_KEY" in str(caught.value)


def msgspec_model(
    name: str, urls: list[str], *, api_key_env: str | None = None, price: str = "0"
) -> ModelSettings:
    return ModelSettings(
        name=name,
        price_per_request=Decimal(price),
        backends=[BackendSettings(url=url, api_key_env=api_key_env) for url in urls],
    )


def test_declare_rejects_a_backend_for_an_undeclared_model() -> None:
    with pytest.raises(CatalogError):
        Pool(CATALOG, [BackendSpec(model="nope", url="http://x")])


def test_leases_count_outstanding_work_until_finished(clock: FakeClock) -> None:
    pool = make_pool(clock)
    leases = [pool.route("llama", RouteHint("", 1000.0)) for _ in range(6)]
    members = {m.backend.id: m for m in pool.members()}
    assert [m.outstanding for m in members.values()] == [2, 2, 2]
    assert [m.outstanding_work for m in members.values()] == [2000.0, 2000.0, 2000.0]
    assert pool.in_flight == 6
    for lease in leases:
        lease.finish(Outcome.OK)
        lease.finish(Outcome.OK)  # a second finish changes nothing
    assert [m.outstanding for m in members.values()] == [0, 0, 0]
    assert [m.requests for m in members.values()] == [2, 2, 2]
    assert pool.in_flight == 0


def test_route_skips_backends_already_tried(clock: FakeClock) -> None:
    pool = make_pool(clock)
    first = pool.route("llama")
    second = pool.route("llama", exclude=frozenset({first.backend.id}))
    third = pool.route("llama", exclude=frozenset({first.backend.id, second.backend.id}))
    assert len({first.backend.id, second.backend.id, third.backend.id}) == 3
    with pytest.raises(NoHealthyBackend) as caught:
        pool.route("llama", exclude=frozenset(m.backend.id for m in pool.members()))
    assert caught.value.status == 503


def test_route_accepts_an_alias_and_rejects_an_unknown_model(clock: FakeClock) -> None:
    pool = Pool(
        CATALOG,
        [BackendSpec(model="llama", url=URLS[0])],
        health=HealthSettings(enabled=False),
        clock=clock,
    )
    assert pool.route("llama-latest").backend.model == "llama"
    with pytest.raises(ModelNotFound):
        pool.route("gpt-5")
    with pytest.raises(NoHealthyBackend):
        pool.route("qwen")  # declared, but no backend serves it
    assert [m.name for m in pool.models()] == ["llama"]


def test_consecutive_failures_open_the_breaker_and_a_trial_closes_it(clock: FakeClock) -> None:
    pool = make_pool(clock, urls=URLS[:2], breaker_failures=3, breaker_cooldown_s=10.0)
    bad = pool.members()[0]
    for _ in range(3):
        lease = pool.route("llama", exclude=frozenset({pool.members()[1].backend.id}))
        lease.finish(Outcome.CONNECT_FAILED)
    assert state_of(bad) is BreakerState.OPEN
    # while open, everything goes to the other backend
    picks = {pool.route("llama").backend.id for _ in range(10)}
    assert picks == {pool.members()[1].backend.id}
    clock.advance(10.0)
    assert state_of(bad) is BreakerState.HALF_OPEN
    others = frozenset({pool.members()[1].backend.id})
    trial = pool.route("llama", exclude=others)
    assert trial.backend.id == bad.backend.id
    # one trial at a time
    with pytest.raises(NoHealthyBackend):
        pool.route("llama", exclude=others)
    trial.finish(Outcome.OK)
    assert state_of(bad) is BreakerState.CLOSED


def test_a_failed_trial_reopens_the_breaker(clock: FakeClock) -> None:
    pool = make_pool(clock, urls=URLS[:1], breaker_failures=1, breaker_cooldown_s=5.0)
    pool.route("llama").finish(Outcome.SERVER_ERROR)
    with pytest.raises(NoHealthyBackend):
        pool.route("llama")
    clock.advance(5.0)
    pool.route("llama").finish(Outcome.TIMEOUT_BEFORE_FIRST_BYTE)
    assert state_of(pool.members()[0]) is BreakerState.OPEN
    with pytest.raises(NoHealthyBackend):
        pool.route("llama")


def test_cancelled_requests_do_not_count_against_a_backend(clock: FakeClock) -> None:
    pool = make_pool(clock, urls=URLS[:1], breaker_failures=1)
    for _ in range(5):
        pool.route("llama").finish(Outcome.CANCELLED)
    assert state_of(pool.members()[0]) is BreakerState.CLOSED
    assert pool.members()[0].errors == 0


def test_a_readmitted_backend_gets_a_small_share_that_grows(clock: FakeClock) -> None:
    pool = make_pool(clock, urls=URLS[:2], slow_start_s=100.0, slow_start_floor=0.1)
    fresh = pool.members()[0]
    pool.set_health(fresh, HealthState.EJECTED, readmitted=False)
    pool.set_health(fresh, HealthState.HEALTHY, readmitted=True)

    def share_of_fresh(requests: int) -> float:
        hits = 0
        for _ in range(requests):
            lease = pool.route("llama")
            hits += lease.backend.id == fresh.backend.id
            lease.finish(Outcome.OK)
        return hits / requests

    early = share_of_fresh(2000)
    clock.advance(50.0)
    middle = share_of_fresh(2000)
    clock.advance(60.0)
    late = share_of_fresh(2000)
    # round robin would give 0.5; slow start lets through 10 %, then 55 %, then all of it
    assert 0.02 < early < 0.1
    assert 0.2 < middle < 0.4
    assert 0.45 < late < 0.55


def test_a_document_adds_and_removes_backends_without_touching_leases(clock: FakeClock) -> None:
    pool = make_pool(clock, urls=URLS[:1])
    doc = [BackendSpec(model="llama", url=URLS[1], source="document")]
    added, removed = pool.apply_document(doc)
    assert added == [f"llama@{URLS[1]}"]
    assert removed == []
    lease = pool.route("llama", exclude=frozenset({f"llama@{URLS[0]}"}))
    assert lease.backend.url == URLS[1]
    version = pool.snapshot.version
    added, removed = pool.apply_document([BackendSpec(model="llama", url=URLS[2])])
    assert (added, removed) == ([f"llama@{URLS[2]}"], [f"llama@{URLS[1]}"])
    assert pool.snapshot.version > version
    assert {m.backend.url for m in pool.snapshot.members["llama"]} == {URLS[0], URLS[2]}
    # the removed backend's request is still accounted and shows as retired until it ends
    retired = [view for view in pool.describe() if view["retired"]]
    assert [view["url"] for view in retired] == [URLS[1]]
    lease.finish(Outcome.OK)
    assert not [view for view in pool.describe() if view["retired"]]
    assert pool.in_flight == 0


def test_a_document_cannot_remove_configured_backends(clock: FakeClock) -> None:
    pool = make_pool(clock, urls=URLS[:2])
    pool.apply_document([BackendSpec(model="llama", url=URLS[0])])
    pool.apply_document([])
    assert len(pool.snapshot.members["llama"]) == 2


def test_a_document_backend_with_an_unknown_model_missing_key_or_bad_url_is_skipped(
    clock: FakeClock,
) -> None:
    pool = make_pool(clock, urls=URLS[:1])
    added, _ = pool.apply_document(
        [
            BackendSpec(model="unknown", url=URLS[1]),
            BackendSpec(model="llama", url=URLS[2], api_key_env="WARMGATE_TEST_UNSET_KEY"),
            BackendSpec(model="llama", url="10.0.0.5:30000"),  # no scheme
        ]
    )
    assert added == []


def test_a_configured_backend_without_an_http_url_is_a_configuration_error() -> None:
    with pytest.raises(BackendUrlError):
        Pool(CATALOG, [BackendSpec(model="llama", url="ftp://10.0.0.5")])


@pytest.mark.anyio
async def test_drain_refuses_new_requests_and_waits_for_in_flight_ones(clock: FakeClock) -> None:
    pool = make_pool(clock)
    lease = pool.route("llama")
    assert pool.ready()
    pool.drain()
    assert not pool.ready()
    with pytest.raises(ShuttingDown):
        pool.route("llama")
    assert not await pool.wait_idle(0.0)  # a lease is out: the wait ends by its timeout
    idle = asyncio.ensure_future(pool.wait_idle(30.0))
    lease.finish(Outcome.OK)
    assert await idle
    assert pool.in_flight == 0


def test_metrics_render_requests_errors_and_per_backend_gauges(clock: FakeClock) -> None:
    pool = make_pool(clock, urls=URLS[:1])
    lease = pool.route("llama")
    lease.progress()
    clock.advance(0.015)
    lease.progress()
    lease.finish(Outcome.STREAM_CUT)
    pool.route("llama")  # still in flight
    text = pool.metrics.render()
    backend = f'backend="llama@{URLS[0]}",model="llama"'
    assert f'warmgate_backend_requests_total{{{backend},outcome="stream_cut"}} 1' in text
    assert f"warmgate_backend_errors_total{{{backend}}} 1" in text
    assert f"warmgate_backend_outstanding_requests{{{backend}}} 1" in text
    assert f"warmgate_backend_healthy{{{backend}}} 1" in text
    assert f'warmgate_backend_inter_token_seconds_bucket{{{backend},le="0.02"}} 1' in text
    assert f"warmgate_backend_ttft_seconds_count{{{backend}}} 1" in text


def test_the_admin_check_wants_the_exact_bearer_admin_key() -> None:
    assert admin_authorized("Bearer sk-admin", "sk-admin")
    assert admin_authorized("bearer sk-admin", "sk-admin")
    assert not admin_authorized("Bearer sk-admin2", "sk-admin")
    assert not admin_authorized("Basic sk-admin", "sk-admin")
    assert not admin_authorized(None, "sk-admin")
    assert not admin_authorized("Bearer ", None)  # no admin key configured: nobody gets in
    assert not admin_authorized("Bearer ", "")


class RecordedEvents:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def event(self, name: str, **fields: object) -> None:
        self.lines.append((name, fields))

    def warning(self, name: str, **fields: object) -> None:
        self.lines.append((name, fields))


def test_health_and_breaker_changes_are_reported_to_the_injected_event_log(
    clock: FakeClock,
) -> None:
    events = RecordedEvents()
    pool = Pool(
        Catalog([ModelEntry(name="llama", served_name="llama")]),
        [BackendSpec(model="llama", url=URLS[0], api_key_env="K")],
        health=HealthSettings(enabled=False, breaker_failures=1),
        clock=clock,
        environ={"K": "sk-never-logged"},
        events=events,
    )
    member = pool.members()[0]
    pool.route("llama").finish(Outcome.CONNECT_FAILED)
    pool.set_health(member, HealthState.EJECTED, readmitted=False)
    pool.apply_document([BackendSpec(model="nope", url=URLS[1])])
    assert [name for name, _ in events.lines] == [
        "backend_breaker",
        "backend_health",
        "backend_document_unknown_model",
    ]
    assert events.lines[0][1]["state"] == "open"
    assert "sk-never-logged" not in repr(events.lines)


def test_a_document_backend_back_at_its_address_with_another_key_uses_the_new_key(
    clock: FakeClock,
) -> None:
    catalog = Catalog([ModelEntry(name="llama", served_name="llama")])
    pool = Pool(
        catalog,
        health=HealthSettings(enabled=False),
        routing=RoutingSettings(load_poll_interval_s=0),
        environ={"OLD_KEY": "sk-old", "NEW_KEY": "sk-new"},
        clock=clock,
    )
    pool.apply_document([BackendSpec(model="llama", url=URLS[0], api_key_env="OLD_KEY")])
    held = pool.route("llama")  # in flight on the replica with the old key
    added, removed = pool.apply_document(
        [BackendSpec(model="llama", url=URLS[0], api_key_env="NEW_KEY")]
    )
    assert (added, removed) == ([], [])
    assert held.backend.api_key == "sk-old"
    fresh = pool.route("llama")
    assert fresh.backend.api_key == "sk-new"
    assert [view["retired"] for view in pool.describe()] == [False, True]
    held.finish(Outcome.OK)
    fresh.finish(Outcome.OK)
    assert [view["retired"] for view in pool.describe()] == [False]
    # The same document again changes nothing: the member (and its state) is kept.
    member = pool.members()[0]
    pool.apply_document([BackendSpec(model="llama", url=URLS[0], api_key_env="NEW_KEY")])
    assert pool.members() == [member]
