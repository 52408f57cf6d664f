"""An API key as the gateway sees it, and how secrets are made and hashed.

A secret is `wg-` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 digest is
ever stored: a salted slow hash protects low-entropy passwords, while a 256-bit random secret cannot
be guessed from its digest, and one SHA-256 per request keeps authentication a dict lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

import msgspec

SECRET_PREFIX = "wg-"  # noqa: S105 the public prefix of every secret, not a secret
SECRET_RANDOM_BYTES = 32
KEY_ID_PREFIX = "key_"

QuotaPeriod = Literal["day", "month"]


class Key(msgspec.Struct, frozen=True, kw_only=True):
    """A key's public identity and limits; it never holds the secret nor its hash."""

    id: str
    name: str
    allowed_models: frozenset[str] | None = None
    rpm: int | None = None
    max_concurrency: int | None = None
    quota: int | None = None
    quota_period: QuotaPeriod | None = None
    expires_at: float | None = None  # unix seconds
    revoked: bool = False
    created_at: float = 0.0

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def active_at(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_RANDOM_BYTES)


def generate_key_id() -> str:
    return KEY_ID_PREFIX + secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
