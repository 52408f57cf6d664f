"""The approximate prefix tree: longest match per tenant, bounded memory with LRU eviction."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from warmgate.proxy.routing.prefix_tree import NODE_CHARS, PrefixTree, common_prefix_length


def test_match_reports_the_longest_prefix_and_its_tenant() -> None:
    tree = PrefixTree(max_chars=10_000)
    tree.insert("hello world", 11, "a")
    tree.insert("hello there", 11, "b")
    assert tree.match("hello world, again", 18, ["a", "b"]) == (11, "a")
    assert tree.match("hello thermos", 13, ["a", "b"]) == (10, "b")
    assert tree.match("hello", 5, ["a", "b"])[0] == 5
    assert tree.match("goodbye", 7, ["a", "b"]) == (0, None)


def test_match_prefers_the_most_recent_tenant_of_a_shared_prefix() -> None:
    tree = PrefixTree(max_chars=10_000)
    tree.insert("shared prefix", 13, "a")
    tree.insert("shared prefix", 13, "b")
    assert tree.match("shared prefix", 13, ["a", "b"]) == (13, "b")
    assert tree.match("shared prefix", 13, ["a"]) == (13, "a")


def test_match_honours_the_end_limit() -> None:
    tree = PrefixTree(max_chars=10_000)
    tree.insert("abcdefgh", 4, "a")
    assert tree.chars == 4
    assert tree.match("abcdefgh", 8, ["a"]) == (4, "a")
    assert tree.match("abcdefgh", 2, ["a"]) == (2, "a")


def test_memory_stays_bounded_and_the_least_recently_used_text_goes_first() -> None:
    bound = 10 * (100 + NODE_CHARS)  # room for about ten of the texts below
    tree = PrefixTree(max_chars=bound)
    for i in range(50):
        text = f"{i:04d}" + "x" * 96
        tree.insert(text, len(text), f"t{i % 3}")
        assert tree.size <= bound
    newest = "0049" + "x" * 96
    oldest = "0000" + "x" * 96
    assert tree.match(newest, 100, ["t0", "t1", "t2"])[0] == 100
    assert tree.match(oldest, 100, ["t0", "t1", "t2"])[0] == 2  # only "00" is left of it


def test_many_short_prompts_take_about_the_bound_in_memory_not_more() -> None:
    """Each node weighs its bookkeeping, not only its text: short prompts fill the bound as
    long ones do (counting characters alone, these took over 2.5 MB)."""

    def prompt(i: int) -> str:
        return f"system prompt {i % 7}. user {i}: " + "how are you today " * (i % 4)

    bound = 200_000
    tree = PrefixTree(max_chars=bound)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5_000):
            text = prompt(i)
            tree.insert(text, len(text), f"t{i % 3}")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert tree.size <= bound
    assert grown < 1.5 * bound
    last = prompt(4_999)
    assert tree.match(last, len(last), ["t0", "t1", "t2"]) == (len(last), "t1")


def test_a_long_prompt_is_matched_without_degrading_to_a_character_loop() -> None:
    tree = PrefixTree(max_chars=4_000_000)
    text = "token " * 90_000  # about 540 kB, a 128k-token prompt
    tree.insert(text, len(text), "a")
    follow_up = text + "next turn"
    assert tree.match(follow_up, len(follow_up), ["a"]) == (len(text), "a")
    diverged = text[:300_001] + "!" + text[300_002:]
    assert tree.match(diverged, len(diverged), ["a"]) == (300_001, "a")


@given(st.text(max_size=60), st.text(max_size=60), st.integers(0, 60))
def test_common_prefix_length_agrees_with_a_plain_loop(label: str, text: str, pos: int) -> None:
    pos = min(pos, len(text))
    end = len(text)
    expected = 0
    while (
        expected < len(label) and pos + expected < end and label[expected] == text[pos + expected]
    ):
        expected += 1
    assert common_prefix_length(label, text, pos, end) == expected


@given(st.lists(st.tuples(st.text("ab", min_size=1, max_size=12), st.sampled_from("xyz"))))
def test_every_inserted_text_matches_fully_for_its_tenant(items: list[tuple[str, str]]) -> None:
    tree = PrefixTree(max_chars=1_000_000)
    for text, tenant in items:
        tree.insert(text, len(text), tenant)
    for text, tenant in items:
        assert tree.match(text, len(text), [tenant])[0] == len(text)
