"""Prompts as the engine sees them: a Llama-3 chat template rendered to token strings.

Special tokens count as one token each, as they do in the real tokenizer; tool definitions are
part of the prompt (as the chat template puts them in the system turn), so they cost prefill time
and cache like any other prefix.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

from warmgate.backends.sim.tokenizer import Tokenizer
from warmgate.backends.sim.wire import ChatMessage, Tool
from warmgate.backends.sim.writer import WORDS

BOS = "<|begin_of_text|>"
HEADER_START = "<|start_header_id|>"
HEADER_END = "<|end_header_id|>"
EOT = "<|eot_id|>"


class Prompt:
    """The prompt's tokens, their prefix-cache block hashes and a seed for the answer."""

    __slots__ = ("block_hashes", "seed", "tokens")

    def __init__(self, tokens: list[str], tokenizer: Tokenizer, seed: int) -> None:
        self.tokens = tokens
        self.block_hashes = tokenizer.block_hashes(tokens)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.tokens)


def answer_seed(base_seed: int, text: str, length: int, request_seed: int | None) -> int:
    """Same prompt (and seed) → same answer, as greedy decoding would give."""
    return zlib.crc32(text.encode(), (base_seed ^ length ^ (request_seed or 0)) & 0xFFFFFFFF)


def render_chat(
    messages: Sequence[ChatMessage],
    tools: Sequence[Tool] | None,
    tokenizer: Tokenizer,
    base_seed: int,
    request_seed: int | None,
) -> Prompt:
    tokens = [BOS]
    tokenize = tokenizer.tokenize
    if tools:
        definitions = json.dumps([{"type": "function", "function": _function(t)} for t in tools])
        tokens += [HEADER_START, "system", HEADER_END, "\n\n"]
        tokens += tokenize("Environment: ipython\nYou may call these functions:\n" + definitions)
        tokens.append(EOT)
    last_text = ""
    for message in messages:
        tokens += [HEADER_START, message.role, HEADER_END, "\n\n"]
        last_text = message.text()
        tokens += tokenize(last_text)
        for call in message.tool_calls or ():
            arguments = call.function.arguments
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            tokens += tokenize(f'{{"name": "{call.function.name}", "parameters": {arguments}}}')
        tokens.append(EOT)
    tokens += [HEADER_START, "assistant", HEADER_END, "\n\n"]
    return Prompt(tokens, tokenizer, answer_seed(base_seed, last_text, len(tokens), request_seed))


def render_text(
    text: str, tokenizer: Tokenizer, base_seed: int, request_seed: int | None
) -> Prompt:
    tokens = [BOS, *tokenizer.tokenize(text)]
    return Prompt(tokens, tokenizer, answer_seed(base_seed, text, len(tokens), request_seed))


def render_ids(ids: Sequence[int], tokenizer: Tokenizer, base_seed: int) -> Prompt:
    tokens = [str(token_id) for token_id in ids]
    return Prompt(tokens, tokenizer, answer_seed(base_seed, " ".join(tokens[-64:]), len(ids), None))


def decode_ids(ids: Sequence[int]) -> str:
    """Token ids as text (the simulator's vocabulary: id i is a word, chosen by i)."""
    return "".join(" " + WORDS[token_id % len(WORDS)] for token_id in ids).lstrip()


def _function(tool: Tool) -> dict[str, object]:
    function = tool.function
    return {
        "name": function.name,
        "description": function.description or "",
        "parameters": function.parameters or {},
    }
