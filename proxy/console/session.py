"""Console sessions: the admin key exchanged once for a signed, HttpOnly, SameSite=Strict cookie.

A session is a cookie the edge can check alone: `<expires_at>.<session id>.<signature>`, signed
with HMAC-SHA256 under a key derived from the admin key. Every worker of every edge that holds
the same admin key accepts it, and nothing is kept in any server's memory or store; rotating
the admin key ends every session at once. The cookie never carries the admin key, and the
browser never sees the key again after the login form.

Requests that change something (any method but GET and HEAD) made with the cookie must also
carry the session's CSRF token in the `X-CSRF-Token` header (or the `csrf_token` field of a
form); the token is an HMAC of the session id, so only a page of the edge that read
`GET /console/session` knows it. SameSite=Strict keeps the cookie off cross-site requests in
the first place, and the login form carries a token of its own (double submit: a cookie and a
hidden field that must match), so no other site can log a browser in either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import msgspec

from warmgate.proxy.errors import PermissionDenied

SESSION_COOKIE = "warmgate_console"
LOGIN_COOKIE = "warmgate_console_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_TTL_S = 8 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SIGNING_CONTEXT = b"warmgate console session v1"
_CSRF_CONTEXT = b"csrf:"


class Session(msgspec.Struct, frozen=True):
    session_id: str
    expires_at: int  # unix seconds


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of text from a request (bytes: any character is allowed)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ConsoleSessions:
    """Issues and checks session cookies; with no admin key configured, none is ever valid."""

    def __init__(
        self,
        admin_key: str | None,
        *,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A key of its own, derived from the admin key: the cookie's signature says nothing
        # about the admin key, and a session cannot be turned into it.
        self._signing_key = (
            None
            if not admin_key
            else hmac.new(admin_key.encode(), _SIGNING_CONTEXT, hashlib.sha256).digest()
        )
        self.ttl_s = ttl_s
        self._clock = clock

    def _sign(self, payload: str) -> str:
        assert self._signing_key is not None
        return _b64(hmac.new(self._signing_key, payload.encode(), hashlib.sha256).digest())

    def issue(self) -> tuple[str, Session]:
        """A new session's cookie value and the session."""
        if self._signing_key is None:
            raise RuntimeError("no admin key: the console has no sessions")
        session = Session(secrets.token_urlsafe(16), int(self._clock() + self.ttl_s))
        payload = f"{session.expires_at}.{session.session_id}"
        return f"{payload}.{self._sign(payload)}", session

    def verify(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None when absent, forged, malformed or expired."""
        if not cookie or self._signing_key is None:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not payload or not _same(signature, self._sign(payload)):
            return None
        expires, _, session_id = payload.partition(".")
        if not (expires.isascii() and expires.isdigit()):
            return None
        expires_at = int(expires)
        if not session_id or self._clock() >= expires_at:
            return None
        return Session(session_id, expires_at)

    def csrf_token(self, session: Session) -> str:
        return self._sign(_CSRF_CONTEXT.decode() + session.session_id)

    def check_csrf(self, session: Session, token: str | None) -> None:
        if not token or not _same(token, self.csrf_token(session)):
            raise PermissionDenied(
                "This request needs the console's CSRF token (X-CSRF-Token).", code="csrf_failed"
            )


def login_token() -> str:
    """The login form's own token, set as a cookie and echoed by a hidden field."""
    return secrets.token_urlsafe(24)


def login_token_matches(cookie: str | None, field: str | None) -> bool:
    return bool(cookie) and bool(field) and _same(str(cookie), str(field))
