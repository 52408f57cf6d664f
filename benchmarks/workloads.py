"""Request bodies for the benchmarks: unique long prompts and shared-prefix conversations.

Prompts are built from short common English words, each of which a byte-level BPE tokenizer
(and the simulator's tokenizer) counts as about one token with its leading space, so a prompt of
N words is about N tokens; the benchmarks report the backend's own `prompt_tokens` as well.
"""

from __future__ import annotations

import random
from typing import Any

from benchmarks.loadgen import Conversation

_VOCABULARY = (
    "the of and to in is was for on are with as his they be at one have this from or had by "
    "word but what some we can out other were all there when up use your how said an each she "
    "which do their time if will way about many then them write would like so these her long "
    "make thing see him two has look more day could go come did number sound no most people my "
    "over know water than call first who may down side been now find any new work part take "
    "get place made live where after back little only round man year came show every good me "
    "give our under name very through just form sense great think say help low line differ turn "
    "cause much mean before move right boy old too same tell does set three want air well also "
    "play small end put home read hand port large spell add even land here must big high such"
)
WORDS = tuple(_VOCABULARY.split())


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def unique_prompt(seed: int, tokens: int) -> str:
    """About `tokens` tokens, starting with a per-seed tag so no two prompts share a prefix
    (a prefix cache must not make one request cheaper than another)."""
    rng = random.Random(seed)
    tag = f"Request {seed:08d} {rng.getrandbits(64):016x}."
    return tag + " " + text(rng, max(tokens - 8, 1)) + "\nSummarise the text above."


def long_prompt_body(
    model: str, seed: int, tokens: int, max_tokens: int, stream: bool = True
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": unique_prompt(seed, tokens)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def shared_prefix_conversations(
    model: str,
    *,
    groups: int,
    conversations_per_group: int,
    turns: int,
    system_tokens: int,
    question_tokens: int,
    max_tokens: int,
    seed: int = 0,
) -> list[Conversation]:
    """Like SGLang's `generated-shared-prefix` dataset, made multi-turn: each group shares a long
    system prompt; each conversation in it asks `turns` questions, each turn carrying the whole
    history. Conversations of different groups are interleaved, as concurrent users would be."""
    rng = random.Random(seed)
    by_group: list[list[Conversation]] = []
    for group in range(groups):
        system = f"System prompt of group {group}. " + text(rng, system_tokens)
        members = []
        for _ in range(conversations_per_group):
            body: dict[str, Any] = {
                "model": model,
                "messages": [{"role": "system", "content": system}],
                "max_tokens": max_tokens,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            questions = [text(rng, question_tokens) + "?" for _ in range(turns)]
            members.append(Conversation(body=body, turns=questions))
        by_group.append(members)
    order = [c for position in zip(*by_group, strict=True) for c in position]
    rng.shuffle(order)
    return order
