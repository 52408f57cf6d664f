"""Sampling parameters checked as SGLang's SamplingParams.verify checks them (same messages).

The simulator does not sample, but a request SGLang would refuse must be refused here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from backends.sim.errors import SimError


def check_sampling(params: Mapping[str, object]) -> None:
    """Raise SimError (400) for a value SGLang refuses; absent or None values take defaults."""
    temperature = _number(params, "temperature", 1.0)
    if not math.isfinite(temperature) or temperature < 0.0:
        raise SimError(f"temperature must be a non-negative finite number, got {temperature}.")
    top_p = _number(params, "top_p", 1.0)
    if not 0.0 < top_p <= 1.0:
        raise SimError(f"top_p must be in (0, 1], got {top_p}.")
    min_p = _number(params, "min_p", 0.0)
    if not 0.0 <= min_p <= 1.0:
        raise SimError(f"min_p must be in [0, 1], got {min_p}.")
    top_k = int(_number(params, "top_k", -1))
    if top_k != -1 and top_k < 1:
        raise SimError(f"top_k must be -1 (disable) or at least 1, got {top_k}.")
    for name in ("frequency_penalty", "presence_penalty"):
        value = _number(params, name, 0.0)
        if not -2.0 <= value <= 2.0:
            raise SimError(f"{name} must be in [-2, 2], got {value}.")
    repetition = _number(params, "repetition_penalty", 1.0)
    if not 0.0 < repetition <= 2.0:
        raise SimError(
            f"repetition_penalty must be in (0, 2] (1.0 = no penalty), got {repetition}."
        )
    max_new = params.get("max_new_tokens")
    if isinstance(max_new, int) and max_new < 0:
        raise SimError(f"max_new_tokens must be at least 0, got {max_new}.")


def _number(params: Mapping[str, object], name: str, default: float) -> float:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return value
