"""Consistent hashing: the conversation's own order of backends (rendezvous hashing of the
first `hash_prefix_chars` of its text), the first one not loaded beyond the bound. Pure and
the same on every edge and worker, so a conversation keeps its replica (and its KV cache)
whichever edge a load balancer sends each turn to. A request without text goes to the least
loaded backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from warmgate.proxy.routing.policies import Candidate, RouteHint
from warmgate.proxy.routing.rendezvous import Rendezvous, conversation_key
from warmgate.proxy.settings import RoutingSettings


class ConsistentHash:
    def __init__(self, settings: RoutingSettings) -> None:
        self._chars = settings.hash_prefix_chars
        self._rendezvous = Rendezvous(settings.hash_load_factor, settings.hash_load_slack)

    def choose(self, model: str, candidates: Sequence[Candidate], hint: RouteHint) -> int:
        if not hint.prefix:
            return min(range(len(candidates)), key=lambda i: candidates[i].load)
        key = conversation_key(hint.prefix, self._chars)
        return self._rendezvous.pick(
            key, [c.backend_id for c in candidates], [c.load for c in candidates]
        )

    def forget(self, backend_id: str) -> None:
        self._rendezvous.forget(backend_id)
