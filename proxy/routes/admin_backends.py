"""`GET /admin/backends`: every backend's state, health, load and ejections (admin key only).

The view is built from the pool's live members; it never contains a backend's API key.
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from proxy.errors import InvalidApiKey
from proxy.routing.pool import Pool

AnyRequest = Request[Any, Any, Any]
_encode = msgspec.json.Encoder().encode


def admin_authorized(authorization: str | None, admin_key: str | None) -> bool:
    """A constant-time check of `Authorization: Bearer <admin key>`; False when none is set."""
    if not admin_key or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), admin_key.encode())


def admin_backends_routes(pool: Pool, admin_key: str | None) -> list[HTTPRouteHandler]:
    @get("/admin/backends", name="admin_backends")
    async def admin_backends(request: AnyRequest) -> Response[bytes]:
        if not admin_authorized(request.headers.get("authorization"), admin_key):
            raise InvalidApiKey("This endpoint needs the admin key.")
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
        return Response(_encode(body), media_type="application/json")

    return [admin_backends]
