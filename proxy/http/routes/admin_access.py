"""Who may use `/admin/*`: the one guard every admin route is mounted behind.

The admin key passes. A valid user key is refused with 403 `admin_key_required` (it is known, it
just cannot do this); anything else, no key or a wrong one, gets 401 `invalid_api_key`. With no
admin key configured, nobody gets in. The check is constant-time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from litestar import Router
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler

from warmgate.proxy.errors import InvalidApiKey, PermissionDenied
from warmgate.proxy.keys.ring import KeyRing


def admin_authorized(authorization: str | None, admin_key: str | None) -> bool:
    """A constant-time check of `Authorization: Bearer <admin key>`; False when none is set."""
    if not admin_key or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), admin_key.encode())


Guard = Callable[[ASGIConnection, BaseRouteHandler], None]  # type: ignore[type-arg]


def admin_check(keys: KeyRing, admin_key: str | None, authorization: str | None) -> None:
    """Pass the admin key; raise the OpenAI-shaped 403 for a user key, 401 for anything else."""
    if admin_authorized(authorization, admin_key):
        return
    try:
        keys.authenticate(authorization)
    except InvalidApiKey:
        raise InvalidApiKey("This endpoint needs the admin key.") from None
    raise PermissionDenied("A user key cannot use admin endpoints.", code="admin_key_required")


def admin_guard(keys: KeyRing, admin_key: str | None) -> Guard:
    """The Litestar guard. A closure, not an object: Litestar deep-copies what it registers,
    and a copied key ring would never see a key created after the start."""

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        admin_check(keys, admin_key, connection.headers.get("authorization"))

    return guard


def admin_router(guard: Guard, handlers: Sequence[HTTPRouteHandler]) -> Router:
    """Every admin route, behind `guard`; the handlers keep their full `/admin/...` paths."""
    for handler in handlers:
        if not handler.paths or not all(path.startswith("/admin/") for path in handler.paths):
            raise ValueError(f"admin route {handler.name} is not under /admin/")
    return Router(path="/", guards=[guard], route_handlers=list(handlers))
