"""A deterministic tokenizer that needs no download.

It splits text the way byte-level BPE tokenizers roughly do (a word with its leading space is one
token, long words split every six letters, digits in threes, each punctuation mark alone), so
counts land near a real tokenizer's for English. Usage counts, context-length checks and the
prefix cache all use it, so they agree with each other.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

_TOKEN = re.compile(r" ?[^\W\d_]{1,6}| ?\d{1,3}| ?[^\w\s]|\s+(?!\S)|\s+|_")
MEMO_MIN_CHARS = 2048  # shorter texts are cheaper to split again than to remember
MEMO_MAX_TOKENS = 500_000  # about 30 MB of token strings per replica


class Tokenizer:
    """Text to token strings and to hashed fixed-size blocks for the prefix cache."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._memo: OrderedDict[str, list[str]] = OrderedDict()
        self._memo_tokens = 0

    def tokenize(self, text: str) -> list[str]:
        """Token strings (callers must not modify the list: long texts are remembered, so a
        repeated system prompt or document is split once, as a warm tokenizer cache would)."""
        if len(text) < MEMO_MIN_CHARS:
            return _TOKEN.findall(text)
        memo = self._memo
        tokens = memo.get(text)
        if tokens is not None:
            memo.move_to_end(text)
            return tokens
        tokens = _TOKEN.findall(text)
        memo[text] = tokens
        self._memo_tokens += len(tokens)
        while self._memo_tokens > MEMO_MAX_TOKENS and memo:
            self._memo_tokens -= len(memo.popitem(last=False)[1])
        return tokens

    def count(self, text: str) -> int:
        return len(_TOKEN.findall(text))

    def block_hashes(self, tokens: Sequence[str]) -> list[int]:
        """Chained hashes of each full block: equal lists mean an equal prefix up to that block."""
        size = self.page_size
        hashes: list[int] = []
        previous = 0
        for start in range(0, len(tokens) - size + 1, size):
            previous = hash((previous, *tokens[start : start + size]))
            hashes.append(previous)
        return hashes
