"""Cache-aware routing looks past the first 4,096 characters of a prompt: the gateway hands the
router up to `[routing] max_prefix_chars` of text, so conversations that share a long system
prompt but differ after it are told apart, and each one's follow-up finds its replica."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.routing.stack import MODEL, gateway_settings, running_gateway, sim_cluster

pytestmark = pytest.mark.anyio

# Longer than the 4,096 characters the decoders kept by default: within those, every
# conversation below looks the same.
SYSTEM = " ".join(f"Rule {n}: answer briefly and cite the handbook section." for n in range(110))
CONVERSATIONS = 6


def opening(number: int) -> str:
    """A long first message of its own per conversation (4x the shared system prompt)."""
    words = random.Random(number).choices(["glen", "loch", "ridge", "bothy", "cairn"], k=4000)
    return f"Traveller {number}: " + " ".join(words)


async def test_conversations_sharing_a_long_system_prompt_spread_and_stick(
    tmp_path: Path,
) -> None:
    assert len(SYSTEM) > 5000
    first_ids: list[str] = []
    follow_ids: list[str] = []
    async with (
        sim_cluster(3) as cluster,
        running_gateway(gateway_settings(cluster.urls, tmp_path)) as gateway,
    ):
        for number in range(CONVERSATIONS):
            messages: list[ChatCompletionMessageParam] = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": opening(number)},
            ]
            reply = await gateway.client.chat.completions.create(
                model=MODEL, messages=messages, max_tokens=8
            )
            first_ids.append(reply.id)
        for number in range(CONVERSATIONS):
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": opening(number)},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "And the next day?"},
            ]
            reply = await gateway.client.chat.completions.create(
                model=MODEL, messages=messages, max_tokens=8
            )
            follow_ids.append(reply.id)
        backend_of = gateway.backends_by_request()
    firsts = [backend_of[rid] for rid in first_ids]
    follows = [backend_of[rid] for rid in follow_ids]
    # only the shared system prompt matched (well under the 30 % threshold of the text):
    # new conversations go to the least used replica instead of piling onto one
    assert len(set(firsts)) == 3
    # a follow-up extends its own conversation's text, which only its replica was sent
    assert follows == firsts
