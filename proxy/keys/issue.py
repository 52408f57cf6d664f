"""Creating a key (the CLI and the admin API share it) and a key's public view.

The secret exists only in the value `issue_key` returns: the caller shows it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Annotated, Any

import msgspec

from warmgate.proxy.keys.key import Key, QuotaPeriod, generate_key_id, generate_secret, hash_secret
from warmgate.proxy.keys.store import KeyStore, KeyUpdate

Count = Annotated[int, msgspec.Meta(ge=0)]


class KeySpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a new key may use. Unset limits mean no limit."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    allowed_models: list[str] | None = None
    rpm: Count | None = None
    max_concurrency: Count | None = None
    quota: Count | None = None
    quota_period: QuotaPeriod | None = None
    expires_at: float | None = None  # unix seconds


class KeySpecError(ValueError):
    """A spec that breaks a rule the schema cannot state; `param` names the field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def check_spec(quota: int | None, quota_period: str | None) -> None:
    if (quota is None) != (quota_period is None):
        raise KeySpecError("quota and quota_period are set together", "quota_period")


def check_new_key(
    spec: KeySpec, *, now: float, known_models: Collection[str] | None = None
) -> None:
    """The rules a new key must keep: a quota with its period, an expiry still ahead, and
    (when the gateway's models are known) only models that exist."""
    check_spec(spec.quota, spec.quota_period)
    if spec.expires_at is not None and spec.expires_at <= now:
        raise KeySpecError("expires_at is in the past: the key would never work", "expires_at")
    if known_models is not None and spec.allowed_models is not None:
        unknown = sorted(set(spec.allowed_models) - set(known_models))
        if unknown:
            raise KeySpecError(
                f"unknown model(s) {', '.join(unknown)}: the gateway serves "
                f"{', '.join(sorted(known_models)) or 'none'}",
                "allowed_models",
            )


def check_update(current: Key, update: KeyUpdate) -> None:
    quota = current.quota if update.quota is msgspec.UNSET else update.quota
    period = current.quota_period if update.quota_period is msgspec.UNSET else update.quota_period
    check_spec(quota, period)


async def issue_key(
    store: KeyStore,
    spec: KeySpec,
    *,
    clock: Callable[[], float] = time.time,
    known_models: Collection[str] | None = None,
) -> tuple[Key, str]:
    """Store a new key (its hash only); the Key and its secret, to be shown once."""
    check_new_key(spec, now=clock(), known_models=known_models)
    secret = generate_secret()
    key = Key(
        id=generate_key_id(),
        name=spec.name,
        allowed_models=None if spec.allowed_models is None else frozenset(spec.allowed_models),
        rpm=spec.rpm,
        max_concurrency=spec.max_concurrency,
        quota=spec.quota,
        quota_period=spec.quota_period,
        expires_at=spec.expires_at,
        created_at=clock(),
    )
    await store.insert(key, hash_secret(secret))
    return key, secret


def key_view(key: Key) -> dict[str, Any]:
    """The key as the admin API and the CLI show it: never the secret nor its hash."""
    return {
        "object": "api_key",
        "id": key.id,
        "name": key.name,
        "allowed_models": None if key.allowed_models is None else sorted(key.allowed_models),
        "rpm": key.rpm,
        "max_concurrency": key.max_concurrency,
        "quota": key.quota,
        "quota_period": key.quota_period,
        "expires_at": key.expires_at,
        "revoked": key.revoked,
        "created_at": key.created_at,
    }
