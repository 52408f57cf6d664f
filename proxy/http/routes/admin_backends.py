"""`GET /admin/backends`: every backend's state, health, load and ejections (admin key only).

The view is built from the pool's live members; it never contains a backend's API key.
"""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from warmgate.proxy.media import JSON
from warmgate.proxy.routing.pool import Pool

_encode = msgspec.json.Encoder().encode


def admin_backends_routes(pool: Pool) -> list[HTTPRouteHandler]:
    """Mounted behind the admin guard (`proxy.routes.admin_access`)."""

    @get("/admin/backends", name="admin_backends")
    async def admin_backends() -> Response[bytes]:
        snapshot = pool.snapshot
        document = pool.document
        body = {
            "object": "list",
            "ready": pool.ready(),
            "snapshot_version": snapshot.version,
            "in_flight": pool.in_flight,
            "document": None
            if document is None
            else {
                "path": document.path,
                "version": document.version,
                "loads": document.loads,
                "error": document.error,
            },
            "region": pool.region,
            "models": [
                {
                    "name": entry.name,
                    "policy": entry.policy,
                    "backends": len(snapshot.members.get(entry.name, ())),
                    "healthy": len(snapshot.healthy.get(entry.name, ())),
                }
                for entry in pool.catalog.entries
            ],
            "data": pool.describe(),
        }
        return Response(_encode(body), media_type=JSON)

    return [admin_backends]
