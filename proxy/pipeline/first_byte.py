"""The first-byte budget: how long one attempt may wait for a backend's first byte.

A wedged replica (a stopped process, a stuck engine) accepts connections and never answers;
its probes may be excused as busy (`proxy.routing.health`). The budget catches it from the
request side: a stream's first chunk, or the head of a whole answer (which comes with its last
token), must arrive within the budget, which grows with the prompt so that a long prefill is
not mistaken for a wedge. Pure: settings in, seconds out.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from warmgate.proxy.settings import ModelSettings, UpstreamSettings


class FirstByteBudget(msgspec.Struct, frozen=True):
    """One model's budget (0 as a base: no budget)."""

    timeout_s: float  # a stream's first chunk
    s_per_prompt_token: float  # prefill allowance
    answer_timeout_s: float  # a whole answer's head


class FirstByteBudgets:
    """Each model's budget: its own fields where set, else `[upstream]`'s."""

    def __init__(self, upstream: UpstreamSettings, models: Sequence[ModelSettings] = ()) -> None:
        self.default = FirstByteBudget(
            upstream.first_byte_timeout_s,
            upstream.first_byte_s_per_prompt_token,
            upstream.answer_timeout_s,
        )
        self._models = {model.name: self._own(model) for model in models}

    def _own(self, model: ModelSettings) -> FirstByteBudget:
        default = self.default
        return FirstByteBudget(
            default.timeout_s if model.first_byte_timeout_s is None else model.first_byte_timeout_s,
            default.s_per_prompt_token
            if model.first_byte_s_per_prompt_token is None
            else model.first_byte_s_per_prompt_token,
            default.answer_timeout_s if model.answer_timeout_s is None else model.answer_timeout_s,
        )

    def seconds(self, model: str, prompt_tokens: int, *, stream: bool) -> float | None:
        """The budget of an attempt on `model`, or None when it has none."""
        budget = self._models.get(model, self.default)
        base = budget.timeout_s if stream else budget.answer_timeout_s
        if base <= 0:
            return None
        return base + max(prompt_tokens, 0) * budget.s_per_prompt_token
