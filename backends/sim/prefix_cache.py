"""A replica's prefix cache: hashed token blocks with least-recently-used eviction.

SGLang keeps a radix tree over token ids (RadixCache); matching a chained block hash gives the
same answer at page granularity (SGLang's `--page-size`), which is what `cached_tokens` reports.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class PrefixCache:
    """Blocks of `page_size` tokens keyed by the hash of their whole prefix, in LRU order."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._blocks: OrderedDict[int, None] = OrderedDict()

    @property
    def tokens(self) -> int:
        return len(self._blocks) * self.page_size

    def match(self, hashes: Sequence[int]) -> int:
        """Tokens of the longest cached prefix; touches the matched blocks (most recent)."""
        blocks = self._blocks
        matched = 0
        for block in hashes:
            if block not in blocks:
                break
            matched += 1
        # Touch deepest first so that a parent is always more recent than its children and
        # eviction takes leaves first, as the radix tree's LRU does.
        for index in range(matched - 1, -1, -1):
            blocks.move_to_end(hashes[index])
        return matched * self.page_size

    def insert(self, hashes: Sequence[int]) -> None:
        blocks = self._blocks
        for block in reversed(hashes):
            if block in blocks:
                blocks.move_to_end(block)
            else:
                blocks[block] = None

    def evict(self, capacity_tokens: int) -> int:
        """Drop least recently used blocks until at most `capacity_tokens` remain; tokens freed."""
        blocks = self._blocks
        freed = 0
        limit = max(capacity_tokens, 0) // self.page_size
        while len(blocks) > limit:
            blocks.popitem(last=False)
            freed += self.page_size
        return freed

    def clear(self) -> None:
        self._blocks.clear()
