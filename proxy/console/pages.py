"""The console's pages: the login form, the one-page console, its session, and the API docs.

- `GET /console/login` shows the form; `POST /console/login` takes the admin key from the form
  body (never from a URL), checks it with the admin guard's own check, and answers with the
  session cookie and a redirect to `/console`. A wrong key gets 401 and a user key 403, each
  with the form again.
- `GET /console` is the console itself (static HTML, its script draws every page from the JSON
  endpoints); without a session it redirects to the login form.
- `GET /console/session` tells the page its CSRF token and when the session ends.
- `POST /console/logout` clears the cookie.
- `GET /docs` is the interactive API reference (Swagger UI, vendored) over `/openapi.json`.

Every page forbids any script, style, font or connection from another origin (its
Content-Security-Policy), so the console works on an edge without outbound internet and cannot
be made to call elsewhere.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.handlers import HTTPRouteHandler

from warmgate.proxy.console.access import connection_session
from warmgate.proxy.console.assets import SECURITY_HEADERS, Assets
from warmgate.proxy.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleSessions,
    login_token,
    login_token_matches,
)
from warmgate.proxy.errors import InvalidApiKey, PermissionDenied
from warmgate.proxy.media import JSON

AnyRequest = Request[Any, Any, Any]
CONSOLE_PATH = "/console"
LOGIN_PATH = "/console/login"
DOCS_PATH = "/docs"
HTML = "text/html"  # Litestar adds the charset
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI sets style attributes on its elements: inline styles, never inline scripts.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MESSAGES = {
    401: "That is not the admin key.",
    403: "A user key cannot open the console: sign in with the admin key.",
    400: "The form expired: please sign in again.",
}

KeyCheck = Callable[[str | None], None]


class SessionInfo(msgspec.Struct, kw_only=True):
    csrf_token: str
    expires_at: int  # unix seconds
    object: str = "console.session"


def _page(
    body: str, csp: str, status: int = 200, cookies: list[Cookie] | None = None
) -> Response[bytes]:
    headers = {**SECURITY_HEADERS, "content-security-policy": csp, "cache-control": "no-store"}
    return Response(
        body.encode(), status_code=status, media_type=HTML, headers=headers, cookies=cookies
    )


def _redirect(location: str, cookies: list[Cookie] | None = None) -> Response[bytes]:
    headers = {**SECURITY_HEADERS, "location": location, "cache-control": "no-store"}
    return Response(b"", status_code=303, headers=headers, cookies=cookies)


def same_origin(request: AnyRequest) -> bool:
    """False when the browser says the request comes from another origin (`Origin`); a request
    without the header (an old browser, a command-line client) is judged by its tokens."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    return parts.netloc == host and parts.scheme == request.url.scheme


def _secure(request: AnyRequest) -> bool:
    return request.url.scheme == "https"


def page_routes(
    sessions: ConsoleSessions, assets: Assets, check_key: KeyCheck
) -> list[HTTPRouteHandler]:
    """`check_key(authorization)` is the admin guard's check: it raises InvalidApiKey or
    PermissionDenied for anything but the admin key."""
    login_page = assets.text("login.html")
    console_page = assets.text("console.html")
    docs_page = assets.text("docs.html")

    def login_form(request: AnyRequest, status: int = 200) -> Response[bytes]:
        token = login_token()
        message = MESSAGES.get(status, "")
        body = login_page.replace("{{login_token}}", html.escape(token)).replace(
            "{{message}}", html.escape(message)
        )
        cookie = Cookie(
            key=LOGIN_COOKIE,
            value=token,
            path=LOGIN_PATH,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            max_age=3600,
        )
        return _page(body, CONSOLE_CSP, status=status, cookies=[cookie])

    @get(LOGIN_PATH, name="console_login_form")
    async def login_get(request: AnyRequest) -> Response[bytes]:
        return login_form(request)

    @post(LOGIN_PATH, name="console_login", status_code=303)
    async def login_post(request: AnyRequest) -> Response[bytes]:
        form = await request.form()
        if not same_origin(request) or not login_token_matches(
            request.cookies.get(LOGIN_COOKIE), form.get("login_token")
        ):
            return login_form(request, status=400)
        key = str(form.get("key") or "").strip()
        try:
            check_key(f"Bearer {key}" if key else None)
        except InvalidApiKey:
            return login_form(request, status=401)
        except PermissionDenied:
            return login_form(request, status=403)
        value, _ = sessions.issue()
        cookies = [
            Cookie(
                key=SESSION_COOKIE,
                value=value,
                path="/",
                httponly=True,
                samesite="strict",
                secure=_secure(request),
                max_age=int(sessions.ttl_s),
            ),
            Cookie(key=LOGIN_COOKIE, value="", path=LOGIN_PATH, max_age=0),
        ]
        return _redirect(CONSOLE_PATH, cookies=cookies)

    @get(CONSOLE_PATH, name="console")
    async def console(request: AnyRequest) -> Response[bytes]:
        if connection_session(sessions, request) is None:
            return _redirect(LOGIN_PATH)
        return _page(console_page, CONSOLE_CSP)

    @get(f"{CONSOLE_PATH}/session", name="console_session")
    async def session_info(request: AnyRequest) -> Response[bytes]:
        session = connection_session(sessions, request)
        if session is None:
            raise InvalidApiKey("No console session: sign in at /console/login.")
        body = SessionInfo(csrf_token=sessions.csrf_token(session), expires_at=session.expires_at)
        return Response(
            msgspec.json.encode(body),
            media_type=JSON,
            headers={**SECURITY_HEADERS, "cache-control": "no-store"},
        )

    @post(f"{CONSOLE_PATH}/logout", name="console_logout", status_code=303)
    async def logout(request: AnyRequest) -> Response[bytes]:
        session = connection_session(sessions, request)
        if session is not None:
            token = request.headers.get(CSRF_HEADER)
            if token is None:
                token = (await request.form()).get(CSRF_FIELD)
            sessions.check_csrf(session, token)
        cleared = Cookie(key=SESSION_COOKIE, value="", path="/", max_age=0)
        return _redirect(LOGIN_PATH, cookies=[cleared])

    @get(DOCS_PATH, name="docs")
    async def docs() -> Response[bytes]:
        return _page(docs_page, DOCS_CSP)

    return [login_get, login_post, console, session_info, logout, docs]
