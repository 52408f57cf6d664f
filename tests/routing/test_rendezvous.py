"""Routing that agrees without coordination: rendezvous hashing with bounded load, and the
region preference of an edge, over pools that share nothing (as separate edges do)."""

from __future__ import annotations

import random
from collections import Counter

from tests.routing.conftest import FakeClock
from warmgate.proxy.routing import BackendSpec, Catalog, ModelEntry, Outcome, Pool, RouteHint
from warmgate.proxy.routing.member import HealthState, RemoteLoad
from warmgate.proxy.routing.policies import Candidate
from warmgate.proxy.routing.policies.consistent_hash import ConsistentHash
from warmgate.proxy.routing.rendezvous import Rendezvous, conversation_key
from warmgate.proxy.settings import HealthSettings, Policy, RoutingSettings

URLS = [f"http://10.0.0.{n}:30000" for n in range(1, 5)]


def conversation(number: int) -> str:
    return f"System: you are guide {number}. " + "Answer in short sentences. " * 12


def edge_pool(
    clock: FakeClock,
    urls: list[str] = URLS,
    *,
    policy: Policy = "consistent_hash",
    region: str | None = None,
    regions: dict[str, str] | None = None,
    seed: int = 0,
) -> Pool:
    catalog = Catalog([ModelEntry(name="m", served_name="m", policy=policy)])
    specs = [BackendSpec(model="m", url=url, region=(regions or {}).get(url)) for url in urls]
    return Pool(
        catalog,
        specs,
        health=HealthSettings(enabled=False),
        routing=RoutingSettings(load_poll_interval_s=0),
        clock=clock,
        rng=random.Random(seed),
        region=region,
    )


def route_once(pool: Pool, text: str) -> str:
    lease = pool.route("m", RouteHint(text))
    lease.finish(Outcome.OK)
    return lease.backend.url


def test_two_independent_pools_pick_the_same_replica_for_each_conversation(
    clock: FakeClock,
) -> None:
    for policy in ("consistent_hash", "cache_aware"):
        # two edges that learnt of the backends in a different order and share nothing
        edge_a = edge_pool(clock, policy=policy, seed=1)
        edge_b = edge_pool(clock, list(reversed(URLS)), policy=policy, seed=2)
        picks = [route_once(edge_a, conversation(n)) for n in range(40)]
        assert [route_once(edge_b, conversation(n)) for n in range(40)] == picks
        assert len(set(picks)) == len(URLS)  # and they spread over every replica


def test_a_follow_up_turn_hashes_like_its_first_turn() -> None:
    first = conversation(7)
    follow_up = first + " assistant: here. user: and then?"
    assert conversation_key(first, 256) == conversation_key(follow_up, 256)
    assert conversation_key(first, 256) != conversation_key(conversation(8), 256)


def test_bounded_load_spills_to_the_next_backend_in_the_conversations_order() -> None:
    rendezvous = Rendezvous(load_factor=1.25)
    ids = ["a", "b", "c", "d"]
    key = conversation_key(conversation(3), 256)
    order = rendezvous.order(key, ids)
    assert rendezvous.pick(key, ids, [0, 0, 0, 0]) == order[0]
    # the first choice holds 10 of 12 requests in flight: over 1.25 x 3 + 1 = 4.75, passed over
    loads = [0, 0, 0, 0]
    loads[order[0]], loads[order[1]] = 10, 2
    assert rendezvous.pick(key, ids, loads) == order[1]
    loads[order[1]] = 6  # 16 in flight: the bound is 1.25 x 4 + 1 = 6.0, and 6 is within it
    assert rendezvous.pick(key, ids, loads) == order[1]
    loads[order[1]] = 7  # 17 in flight: 7 is over 6.3
    assert rendezvous.pick(key, ids, loads) == order[2]


def test_consistent_hash_without_text_goes_to_the_least_loaded() -> None:
    policy = ConsistentHash(RoutingSettings())
    candidates = [Candidate("a", 3, 0.0), Candidate("b", 1, 0.0), Candidate("c", 2, 0.0)]
    assert policy.choose("m", candidates, RouteHint("")) == 1


def test_removing_a_backend_moves_only_the_conversations_it_held() -> None:
    rendezvous = Rendezvous(load_factor=1.25)
    ids = [f"backend-{n}" for n in range(5)]
    keys = [conversation_key(conversation(n), 256) for n in range(500)]
    before = [ids[rendezvous.pick(k, ids, [0] * 5)] for k in keys]
    left = [b for b in ids if b != "backend-2"]
    rendezvous.forget("backend-2")
    after = [left[rendezvous.pick(k, left, [0] * 4)] for k in keys]
    moved = [n for n in range(500) if before[n] != after[n]]
    assert moved  # backend-2 held some
    assert all(before[n] == "backend-2" for n in moved)
    assert Counter(before)["backend-2"] == len(moved)


REGIONS = {URLS[0]: "eu", URLS[1]: "eu", URLS[2]: "us", URLS[3]: "ap"}


def regional_pool(clock: FakeClock) -> Pool:
    pool = edge_pool(clock, region="eu", regions=REGIONS)
    rtt = {"eu": 0.002, "us": 0.040, "ap": 0.120}
    for member in pool.members():
        member.record_rtt(rtt[member.backend.region or ""], 0.3)
    return pool


def test_an_edge_routes_to_its_own_region_while_it_is_healthy(clock: FakeClock) -> None:
    pool = regional_pool(clock)
    picks = Counter(route_once(pool, conversation(n)) for n in range(200))
    assert set(picks) == {URLS[0], URLS[1]}


def test_without_a_routable_local_backend_the_nearest_region_takes_the_traffic(
    clock: FakeClock,
) -> None:
    pool = regional_pool(clock)
    local = [m for m in pool.members() if m.backend.region == "eu"]
    for member in local:
        pool.set_health(member, HealthState.EJECTED, readmitted=False)
    assert {route_once(pool, conversation(n)) for n in range(50)} == {URLS[2]}  # us: 40 ms
    for member in local:
        pool.set_health(member, HealthState.HEALTHY, readmitted=False)
    assert {route_once(pool, conversation(n)) for n in range(50)} == {URLS[0], URLS[1]}


def test_saturated_local_backends_spill_to_the_nearest_unsaturated_region(
    clock: FakeClock,
) -> None:
    pool = regional_pool(clock)
    members = {m.backend.url: m for m in pool.members()}
    for url in URLS[:2]:
        members[url].remote = RemoteLoad(requests=9, tokens=9, token_usage=0.99, read_at=clock())
    assert {route_once(pool, conversation(n)) for n in range(20)} == {URLS[2]}
    # the us replica saturates too: ap is next by RTT
    members[URLS[2]].remote = RemoteLoad(requests=9, tokens=9, token_usage=0.97, read_at=clock())
    assert {route_once(pool, conversation(n)) for n in range(20)} == {URLS[3]}
    # everything saturated: stay home rather than cross the world to queue
    members[URLS[3]].remote = RemoteLoad(requests=9, tokens=9, token_usage=0.96, read_at=clock())
    assert {route_once(pool, conversation(n)) for n in range(40)} == {URLS[0], URLS[1]}
    # a stale load report says nothing: the local ones are used again
    clock.advance(pool.load_fresh_s + 1)
    assert {route_once(pool, conversation(n)) for n in range(40)} == {URLS[0], URLS[1]}


def test_a_retry_that_excluded_every_local_backend_crosses_to_the_nearest_region(
    clock: FakeClock,
) -> None:
    pool = regional_pool(clock)
    tried = frozenset(m.backend.id for m in pool.members() if m.backend.region == "eu")
    lease = pool.route("m", RouteHint(conversation(1)), exclude=tried)
    lease.finish(Outcome.OK)
    assert lease.backend.url == URLS[2]


def test_edges_that_count_a_few_requests_differently_still_agree() -> None:
    """Each edge counts only its own requests in flight: under light load those differ from
    edge to edge by a few, and the slack keeps that from splitting a conversation."""
    busy_edge, idle_edge = ConsistentHash(RoutingSettings()), ConsistentHash(RoutingSettings())
    ids = ["a", "b", "c", "d"]
    for n in range(40):
        hint = RouteHint(conversation(n))
        first = idle_edge.choose("m", idle(*ids), hint)
        loads = [0, 0, 0, 0]
        loads[first] = 4  # this edge has 4 requests on it, none elsewhere
        assert (
            busy_edge.choose("m", [Candidate(b, loads[i], 0.0) for i, b in enumerate(ids)], hint)
            == first
        )
        loads[first] = 6  # beyond 1.25 x 1.5 + 4: now it spills
        assert (
            busy_edge.choose("m", [Candidate(b, loads[i], 0.0) for i, b in enumerate(ids)], hint)
            != first
        )


def idle(*ids: str) -> list[Candidate]:
    return [Candidate(backend_id, 0, 0.0) for backend_id in ids]
