"""Who may use the admin API and the console's data: the admin key, or a console session.

`session_or_admin(sessions, admin)` wraps the admin guard (`Authorization: Bearer <admin key>`):
a request without an Authorization header but with a valid session cookie passes, provided it
carries the CSRF token when it changes something; every other request goes to the admin guard,
which answers 401 or 403 in OpenAI's shape. A request that sends a key is judged by that key
alone, so a session never lends its rights to a wrong key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from warmgate.proxy.console.session import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    ConsoleSessions,
    Session,
)

Connection = ASGIConnection[Any, Any, Any, Any]
Guard = Callable[[Connection, BaseRouteHandler], None]


def connection_session(sessions: ConsoleSessions, connection: Connection) -> Session | None:
    """The console session of a request that sends no key; None otherwise."""
    if "authorization" in connection.headers:
        return None
    return sessions.verify(connection.cookies.get(SESSION_COOKIE))


def session_or_admin(sessions: ConsoleSessions, admin: Guard) -> Guard:
    """A guard for the admin routes that also admits the console's session. A closure, like the
    admin guard: Litestar copies what it registers."""

    def guard(connection: Connection, handler: BaseRouteHandler) -> None:
        session = connection_session(sessions, connection)
        if session is None:
            admin(connection, handler)
            return
        if connection.scope.get("method") not in SAFE_METHODS:
            sessions.check_csrf(session, connection.headers.get(CSRF_HEADER))

    return guard
