"""The routing policies as pure functions of candidates and a request: no I/O, no clock."""

from __future__ import annotations

import random
from collections import Counter

from warmgate.proxy.routing.policies import Candidate, RouteHint
from warmgate.proxy.routing.policies.cache_aware import CacheAware
from warmgate.proxy.routing.policies.least_outstanding import LeastOutstanding
from warmgate.proxy.routing.policies.round_robin import RoundRobin
from warmgate.proxy.settings import RoutingSettings


def idle(*ids: str) -> list[Candidate]:
    return [Candidate(backend_id, 0, 0.0) for backend_id in ids]


def test_round_robin_takes_each_backend_in_turn() -> None:
    policy = RoundRobin()
    candidates = idle("a", "b", "c")
    picks = [candidates[policy.choose("m", candidates, RouteHint())].backend_id for _ in range(9)]
    assert picks == ["a", "b", "c"] * 3


def test_round_robin_keeps_a_separate_turn_per_model() -> None:
    policy = RoundRobin()
    candidates = idle("a", "b")
    assert policy.choose("m1", candidates, RouteHint()) == 0
    assert policy.choose("m2", candidates, RouteHint()) == 0
    assert policy.choose("m1", candidates, RouteHint()) == 1


def test_least_outstanding_prefers_fewer_prompt_tokens_over_fewer_requests() -> None:
    policy = LeastOutstanding(random.Random(7))
    # "long" has one 128k-token prompt in flight, "short" ten 100-token ones.
    candidates = [Candidate("long", 1, 128_000.0), Candidate("short", 10, 1_000.0)]
    picks = {policy.choose("m", candidates, RouteHint()) for _ in range(50)}
    assert picks == {1}


def test_least_outstanding_never_picks_the_busiest_of_many() -> None:
    policy = LeastOutstanding(random.Random(3))
    candidates = [Candidate(f"b{i}", i, float(i * 100)) for i in range(5)]
    picks = Counter(policy.choose("m", candidates, RouteHint()) for _ in range(2000))
    assert picks[4] == 0  # the busiest loses every pair it is drawn into
    assert picks[0] > picks[3]


def test_least_outstanding_with_one_candidate_returns_it() -> None:
    policy = LeastOutstanding(random.Random(1))
    assert policy.choose("m", [Candidate("only", 5, 5.0)], RouteHint()) == 0


def cache_aware(**changes: object) -> CacheAware:
    return CacheAware(RoutingSettings(**changes))  # type: ignore[arg-type]


def test_cache_aware_sends_a_follow_up_turn_to_the_backend_that_saw_its_prefix() -> None:
    policy = cache_aware()
    candidates = idle("a", "b", "c", "d")
    first = "system: you are helpful. user: tell me about the tides of the northern sea"
    chosen = policy.choose("m", candidates, RouteHint(first))
    follow_up = first + " assistant: they rise twice a day. user: and why is that"
    for _ in range(5):
        assert policy.choose("m", candidates, RouteHint(follow_up)) == chosen


def test_cache_aware_spreads_new_conversations_by_their_hash() -> None:
    policy = cache_aware()
    candidates = idle("a", "b", "c", "d")
    picks = Counter(
        policy.choose("m", candidates, RouteHint(f"conversation {i}: " + "words " * 40))
        for i in range(400)
    )
    assert sorted(picks) == [0, 1, 2, 3]
    assert min(picks.values()) >= 60  # 100 each on average


def test_cache_aware_sends_new_conversations_where_another_edge_would() -> None:
    """Two policies that share nothing (two edges) place every new conversation alike, and a
    follow-up seen by only one of them still goes to the same backend on the other."""
    edge_a, edge_b = cache_aware(), cache_aware()
    candidates = idle("a", "b", "c", "d")
    for i in range(50):
        # longer than the 256 hashed characters, as a first turn with a system prompt is
        first = f"user {i}: plan a walk in the hills near loch {i}. " + "glen ridge " * 30
        on_a = edge_a.choose("m", candidates, RouteHint(first))
        follow_up = first + " assistant: sure. user: and a shorter one?"
        assert edge_b.choose("m", candidates, RouteHint(follow_up)) == on_a
        assert edge_a.choose("m", candidates, RouteHint(follow_up + " thanks")) == on_a


def test_cache_aware_ignores_matches_at_or_below_the_threshold() -> None:
    # one hashed character: every match below decides by load, not by the hash
    policy = cache_aware(cache_threshold=0.3, hash_prefix_chars=1)
    assert policy.choose("m", idle("a"), RouteHint("x" * 30)) == 0  # recorded for "a"
    # 30 of 100 characters match: 0.3 is not above the threshold, least loaded wins
    loaded = [Candidate("a", 5, 0.0), Candidate("b", 0, 0.0)]
    assert policy.choose("m", loaded, RouteHint("x" * 30 + "y" * 70)) == 1
    # 31 of 100 match "a": above the threshold
    assert policy.choose("m", loaded, RouteHint("x" * 30 + "yz" + "w" * 68)) == 1
    policy2 = cache_aware(cache_threshold=0.3, hash_prefix_chars=1)
    policy2.choose("m", idle("a"), RouteHint("x" * 31))
    assert policy2.choose("m", loaded, RouteHint("x" * 31 + "y" * 69)) == 0


def test_cache_aware_goes_to_the_least_loaded_when_load_is_imbalanced() -> None:
    policy = cache_aware()
    text = "shared system prompt " * 20
    assert policy.choose("m", idle("a", "b"), RouteHint(text)) == 0
    # 100 vs 10: max - min = 90 > 64 and 100 > 1.5 * 10
    imbalanced = [Candidate("a", 100, 0.0), Candidate("b", 10, 0.0)]
    assert policy.imbalanced(imbalanced)
    assert policy.choose("m", imbalanced, RouteHint(text + "more")) == 1


def test_cache_aware_keeps_affinity_while_the_difference_is_within_thresholds() -> None:
    policy = cache_aware()
    text = "shared system prompt " * 20
    assert policy.choose("m", idle("a", "b"), RouteHint(text)) == 0
    # the absolute gap (60) is within 64 though the ratio is large
    within_abs = [Candidate("a", 61, 0.0), Candidate("b", 1, 0.0)]
    assert not policy.imbalanced(within_abs)
    # the ratio (1.4) is within 1.5 though the gap is large
    within_rel = [Candidate("a", 280, 0.0), Candidate("b", 200, 0.0)]
    assert not policy.imbalanced(within_rel)
    for loads in (within_abs, within_rel):
        assert policy.choose("m", loads, RouteHint(text + "again")) == 0


def test_cache_aware_only_follows_matches_held_by_candidates() -> None:
    policy = cache_aware()
    text = "a long shared prefix that only backend a has seen " * 4
    assert policy.choose("m", idle("a"), RouteHint(text)) == 0
    # "a" was already tried (excluded): the match it holds does not count; the text goes
    # where its hash sends it among the others, as on an edge that never saw it
    remaining = [Candidate("b", 0, 0.0), Candidate("c", 0, 0.0)]
    fresh = cache_aware().choose("m", remaining, RouteHint(text))
    assert policy.choose("m", remaining, RouteHint(text)) == fresh


def test_cache_aware_forgets_a_removed_backend() -> None:
    policy = cache_aware()
    text = "prefix " * 50
    policy.choose("m", idle("a", "b"), RouteHint(text))
    policy.forget("a")
    assert policy.tree("m").tenant_chars("a") == 0
    assert policy.tree("m").match(text, len(text), ["a", "b"]) == (0, None)


def test_cache_aware_without_text_goes_to_the_least_loaded() -> None:
    policy = cache_aware()
    candidates = [Candidate("a", 3, 0.0), Candidate("b", 1, 0.0), Candidate("c", 2, 0.0)]
    assert policy.choose("m", candidates, RouteHint("")) == 1
    assert policy.tree("m").chars == 0
