"""Multi-turn conversations over four replicas: cache_aware keeps a conversation on the replica
that holds its prefix; round_robin spreads the same turns evenly."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.routing.stack import MODEL, Gateway, gateway_settings, running_gateway, sim_cluster
from warmgate.proxy.settings import Policy

pytestmark = pytest.mark.anyio

CONVERSATIONS = 16
TURNS = 5
QUESTIONS = [
    "What should I pack for a week of hiking in the Scottish highlands in late autumn?",
    "How do I keep my boots dry when the trail crosses several streams every day?",
    "Which maps and navigation apps work best there without a phone signal?",
    "What are the rules for wild camping near lochs and how do I leave no trace?",
    "If the weather turns bad on the third day, what are sensible escape routes?",
]


VOCABULARY = (
    "glen",
    "loch",
    "ridge",
    "bothy",
    "midge",
    "heather",
    "cairn",
    "ferry",
    "island",
    "whisky",
    "bridge",
    "castle",
    "rain",
    "moor",
    "peat",
    "summit",
    "ben",
    "corrie",
    "burn",
    "stag",
    "osprey",
    "puffin",
    "harbour",
    "village",
    "inn",
    "map",
    "compass",
    "torch",
    "stove",
    "tent",
    "tarp",
    "gaiters",
    "fleece",
)


class Workload:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.turn_ids: list[list[str]] = []
        self.cached_tokens = 0
        self.max_spread = 0

    async def conversation(self, number: int) -> None:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": "You are a concise travel assistant."},
        ]
        ids: list[str] = []
        for turn, question in enumerate(QUESTIONS[:TURNS]):
            content = question if turn else f"{self.introduction(number)} {question}"
            messages.append({"role": "user", "content": content})
            reply = await self.gateway.client.chat.completions.create(
                model=MODEL,
                messages=messages,
                max_tokens=16,
            )
            ids.append(reply.id)
            usage = reply.usage
            if usage and usage.prompt_tokens_details:
                self.cached_tokens += usage.prompt_tokens_details.cached_tokens or 0
            self.observe_spread()
            messages.append(
                {"role": "assistant", "content": reply.choices[0].message.content or ""}
            )
        self.turn_ids.append(ids)

    @staticmethod
    def introduction(number: int) -> str:
        """A first message of its own per conversation (a name, plans, dates)."""
        words = random.Random(number).choices(VOCABULARY, k=30)
        return f"I am traveller {number}. " + " ".join(words) + "."

    def observe_spread(self) -> None:
        loads = [m.outstanding for m in self.gateway.pool.members()]
        self.max_spread = max(self.max_spread, max(loads) - min(loads))

    async def run(self) -> list[list[str]]:
        """Each conversation's backends, turn by turn."""
        async with asyncio.TaskGroup() as group:
            for number in range(CONVERSATIONS):
                group.create_task(self.conversation(number))
        by_request = self.gateway.backends_by_request()
        return [[by_request[rid] for rid in ids] for ids in self.turn_ids]


async def run_workload(policy: Policy, tmp_path: Path) -> tuple[list[list[str]], Workload]:
    async with sim_cluster(4) as cluster:
        settings = gateway_settings(cluster.urls, tmp_path, policy=policy)
        async with running_gateway(settings) as gateway:
            workload = Workload(gateway)
            return await workload.run(), workload


def stickiness(backends: list[list[str]]) -> float:
    follow_ups = [turns[i] == turns[i - 1] for turns in backends for i in range(1, len(turns))]
    return sum(follow_ups) / len(follow_ups)


async def test_cache_aware_keeps_follow_up_turns_on_the_previous_replica(tmp_path: Path) -> None:
    backends, workload = await run_workload("cache_aware", tmp_path)
    assert len(backends) == CONVERSATIONS
    # load never came near the imbalance threshold (max - min > 64) ...
    assert workload.max_spread <= 64
    # ... so at least 90 % of follow-up turns stayed where their prefix is cached
    assert stickiness(backends) >= 0.9
    # and new conversations still spread over the replicas
    assert len({turns[0] for turns in backends}) >= 3
    assert workload.cached_tokens > 0


async def test_round_robin_spreads_the_same_turns_evenly(tmp_path: Path) -> None:
    backends, _ = await run_workload("round_robin", tmp_path)
    counts: dict[str, int] = {}
    for turns in backends:
        for backend in turns:
            counts[backend] = counts.get(backend, 0) + 1
    assert sorted(counts.values()) == [CONVERSATIONS * TURNS // 4] * 4
    assert stickiness(backends) < 0.5
