"""Round robin: each model's requests take the candidates in turn."""

from __future__ import annotations

from collections.abc import Sequence

from warmgate.proxy.routing.policies import Candidate, RouteHint


class RoundRobin:
    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def choose(self, model: str, candidates: Sequence[Candidate], hint: RouteHint) -> int:
        turn = self._next.get(model, 0)
        self._next[model] = turn + 1
        return turn % len(candidates)

    def forget(self, backend_id: str) -> None:
        """Round robin remembers no backend."""
