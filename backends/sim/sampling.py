"""Sampling parameters checked as SGLang's SamplingParams.verify checks them (same messages).

The simulator does not sample, but a request SGLang would refuse must be refused here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from warmgate.backends.sim.errors import SimError


def _temperature(value: float) -> str | None:
    if math.isfinite(value) and value >= 0.0:
        return None
    return f"temperature must be a non-negative finite number, got {value}."


def _top_p(value: float) -> str | None:
    return None if 0.0 < value <= 1.0 else f"top_p must be in (0, 1], got {value}."


def _min_p(value: float) -> str | None:
    return None if 0.0 <= value <= 1.0 else f"min_p must be in [0, 1], got {value}."


def _top_k(value: float) -> str | None:
    if value == -1 or value >= 1:
        return None
    return f"top_k must be -1 (disable) or at least 1, got {int(value)}."


def _penalty(name: str) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if -2.0 <= value <= 2.0 else f"{name} must be in [-2, 2], got {value}."

    return check


def _repetition(value: float) -> str | None:
    if 0.0 < value <= 2.0:
        return None
    return f"repetition_penalty must be in (0, 2] (1.0 = no penalty), got {value}."


def _max_new_tokens(value: float) -> str | None:
    return None if value >= 0 else f"max_new_tokens must be at least 0, got {int(value)}."


CHECKS: dict[str, Callable[[float], str | None]] = {
    "temperature": _temperature,
    "top_p": _top_p,
    "min_p": _min_p,
    "top_k": _top_k,
    "frequency_penalty": _penalty("frequency_penalty"),
    "presence_penalty": _penalty("presence_penalty"),
    "repetition_penalty": _repetition,
    "max_new_tokens": _max_new_tokens,
}


def check_sampling(params: Mapping[str, object]) -> None:
    """Raise SimError (400) for a value SGLang refuses; absent or non-numeric values are left
    to their defaults."""
    for name, value in params.items():
        check = CHECKS.get(name)
        if check is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        problem = check(value)
        if problem is not None:
            raise SimError(problem)
