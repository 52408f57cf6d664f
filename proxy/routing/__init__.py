"""Routing: the pool of backends per model, health, circuit breaking and balancing policies.

The request pipeline uses exactly this surface:

    entry = pool.resolve(name)                    # alias -> ModelEntry; ModelNotFound
    lease = pool.route(entry.name, RouteHint(prefix=text, weight=prompt_tokens),
                       exclude=frozenset(tried_ids))   # sync; NoHealthyBackend, ShuttingDown
    lease.backend                                 # Backend: id, url, api_key, served_name, ...
    lease.progress()                              # each chunk from the backend (TTFT, gaps)
    lease.finish(Outcome.OK)                      # exactly once; idempotent
    pool.models(); pool.ready(); pool.drain(); await pool.wait_idle(timeout_s)
"""

from warmgate.proxy.routing.backend import Backend, Outcome
from warmgate.proxy.routing.catalog import BackendSpec, Catalog, ModelEntry, declare
from warmgate.proxy.routing.lease import Lease
from warmgate.proxy.routing.policies import RouteHint
from warmgate.proxy.routing.pool import Pool, PoolSnapshot
from warmgate.proxy.settings import HealthSettings, RoutingSettings

__all__ = [
    "Backend",
    "BackendSpec",
    "Catalog",
    "HealthSettings",
    "Lease",
    "ModelEntry",
    "Outcome",
    "Pool",
    "PoolSnapshot",
    "RouteHint",
    "RoutingSettings",
    "declare",
]
