"""Routing policies: each one a class whose `choose` is a pure function of the candidates and
the request, with no I/O. The pool builds the candidates from its snapshot (healthy members
with a closed breaker, minus those already tried) and hands the policy read-only figures.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

import msgspec

from warmgate.proxy.settings import Policy as PolicyName
from warmgate.proxy.settings import RoutingSettings


class RouteHint(msgspec.Struct, frozen=True):
    """What routing may know about a request: its leading text and its prompt size."""

    prefix: str = ""
    weight: float = 1.0  # estimated prompt tokens


class Candidate(msgspec.Struct, frozen=True):
    """One backend the request may go to, with its load at this instant."""

    backend_id: str
    load: int  # requests in flight
    work: float  # prompt tokens in flight


class Policy(Protocol):
    def choose(self, model: str, candidates: Sequence[Candidate], hint: RouteHint) -> int:
        """The index into `candidates` (never empty) of the backend to use."""
        ...

    def forget(self, backend_id: str) -> None:
        """The backend left the pool: drop what the policy remembers about it."""
        ...


def build_policy(name: PolicyName, settings: RoutingSettings, rng: random.Random) -> Policy:
    from warmgate.proxy.routing.policies.cache_aware import CacheAware  # noqa: PLC0415  # cycle-free
    from warmgate.proxy.routing.policies.consistent_hash import ConsistentHash  # noqa: PLC0415
    from warmgate.proxy.routing.policies.least_outstanding import LeastOutstanding  # noqa: PLC0415
    from warmgate.proxy.routing.policies.round_robin import RoundRobin  # noqa: PLC0415

    if name == "cache_aware":
        return CacheAware(settings)
    if name == "consistent_hash":
        return ConsistentHash(settings)
    if name == "least_outstanding":
        return LeastOutstanding(rng)
    return RoundRobin()
