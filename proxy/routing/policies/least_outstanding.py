"""Power of two choices over outstanding work: two random candidates, the one with fewer prompt
tokens in flight wins (a 128k-token prompt weighs a thousand times a 128-token one); ties go
to the one with fewer requests in flight.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from warmgate.proxy.routing.policies import Candidate, RouteHint


class LeastOutstanding:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, model: str, candidates: Sequence[Candidate], hint: RouteHint) -> int:
        count = len(candidates)
        if count == 1:
            return 0
        first, second = self._rng.sample(range(count), 2)
        a, b = candidates[first], candidates[second]
        if (b.work, b.load) < (a.work, a.load):
            return second
        return first

    def forget(self, backend_id: str) -> None:
        """The policy keeps no per-backend memory."""
