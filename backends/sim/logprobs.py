"""Log probabilities of the sampled tokens, shaped as SGLang 0.5.23 returns them.

Each sampled token gets a logprob <= 0 and, when asked, its `top` most likely alternatives,
sorted from the most likely down, whose probabilities sum to less than 1. The sampled token
usually is the most likely one (a model sampling at a moderate temperature), sometimes the
second or third; where it is among the alternatives it carries the same logprob there. Values
are seeded, so a choice streamed in chunks reports the same numbers as the whole answer.

Chat answers carry `{"content": [{token, bytes, logprob, top_logprobs}]}` (ChoiceLogprobs);
legacy completions carry `{text_offset, token_logprobs, tokens, top_logprobs}` (LogProbs), with
-1 offsets and, when no alternatives were asked for, null entries, as SGLang reports them. A
natural stop samples the end-of-turn token, which has a logprob like any other token. At most
`len(POOL)` alternatives exist per token.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from warmgate.backends.sim.writer import WORDS

EOS_TEXT = "<|eot_id|>"
PUNCTUATION = tuple(".,;:!?-()'\"\n")
POOL = tuple(dict.fromkeys([*(" " + w for w in WORDS), *(w.capitalize() for w in WORDS),
                            *PUNCTUATION, EOS_TEXT]))  # fmt: skip

Entry = tuple[str, float, list[tuple[str, float]]]


class Logprobs:
    """The logprob entries of one choice's sampled tokens (or one prompt's tokens)."""

    __slots__ = ("entries", "first_unscored", "top")

    def __init__(
        self, tokens: Sequence[str], top: int, seed: int, *, first_unscored: bool = False
    ) -> None:
        rng = random.Random(seed)
        self.top = min(max(top, 0), len(POOL) - 1)
        self.entries = [_entry(token, self.top, rng) for token in tokens]
        # A prompt's first token has no logprob (nothing precedes it): SGLang reports None.
        self.first_unscored = first_unscored

    def __len__(self) -> int:
        return len(self.entries)

    def chat(self, start: int, stop: int) -> dict[str, Any]:
        """ChoiceLogprobs for tokens [start, stop)."""
        content = []
        for token, logprob, alternatives in self.entries[start:stop]:
            tops = [
                {"token": alt, "bytes": list(alt.encode()), "logprob": alt_logprob}
                for alt, alt_logprob in alternatives
            ]
            content.append(
                {
                    "token": token,
                    "bytes": list(token.encode()),
                    "logprob": logprob,
                    "top_logprobs": tops,
                }
            )
        return {"content": content}

    def completion(self, start: int, stop: int, before: Logprobs | None = None) -> dict[str, Any]:
        """LogProbs for tokens [start, stop), after every entry of `before` (an echoed prompt)."""
        tokens: list[str] = []
        values: list[float | None] = []
        tops: list[dict[str, float] | None] = []
        for part, lo, hi in ((before, 0, len(before or ())), (self, start, stop)):
            if part is None:
                continue
            for position in range(lo, hi):
                token, logprob, alternatives = part.entries[position]
                unscored = part.first_unscored and position == 0
                tokens.append(token)
                values.append(None if unscored else logprob)
                tops.append(None if unscored or not part.top else dict(alternatives))
        return {
            "text_offset": [-1] * len(tokens),
            "token_logprobs": values,
            "tokens": tokens,
            "top_logprobs": tops,
        }


def _entry(token: str, top: int, rng: random.Random) -> Entry:
    """One sampled token's logprob and its `top` alternatives."""
    mass = 1.0
    probabilities: list[float] = []
    for _ in range(max(top, 1)):
        share = mass * rng.uniform(0.35, 0.9)
        if probabilities:
            share = min(share, probabilities[-1] * rng.uniform(0.3, 0.95))
        probabilities.append(share)
        mass -= share
    rank = 0 if rng.random() < 0.8 else rng.randint(1, 2)
    if rank < top:
        sampled = probabilities[rank]
    else:  # outside the list: less likely than its last entry
        sampled = probabilities[-1] * rng.uniform(0.2, 0.9) if rank else probabilities[0]
    alternatives: list[tuple[str, float]] = []
    if top:
        others = [t for t in rng.sample(POOL, min(len(POOL), top + 1)) if t != token][:top]
        names = [*others[:rank], token, *others[rank:]] if rank < top else others
        alternatives = [
            (name, _log(p)) for name, p in zip(names[:top], probabilities, strict=False)
        ]
    return token, _log(sampled), alternatives


def _log(probability: float) -> float:
    return min(0.0, round(math.log(probability), 6))
