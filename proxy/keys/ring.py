"""The in-memory key ring: authenticates a request with one hash and one dict lookup.

The ring is replaced wholesale by the refresher (`KeyRing.replace`), so readers always see one
consistent snapshot and no lock is needed on the request path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from warmgate.proxy.errors import InvalidApiKey
from warmgate.proxy.keys.key import Key, hash_secret

_BEARER = "bearer "
_MISSING = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_INCORRECT = "Incorrect API key provided."  # never echoes the key, not even a prefix


class KeyRing:
    def __init__(
        self,
        keys: Mapping[str, Key] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`keys` maps a secret's hash to its Key."""
        self._by_hash: dict[str, Key] = dict(keys or {})
        self._clock = clock

    def authenticate(self, authorization: str | None) -> Key:
        """`Authorization` header value -> the active Key; raises InvalidApiKey otherwise."""
        if not authorization:
            raise InvalidApiKey(_MISSING)
        if authorization[: len(_BEARER)].lower() != _BEARER:
            raise InvalidApiKey(_MISSING)
        secret = authorization[len(_BEARER) :].strip()
        if not secret:
            raise InvalidApiKey(_MISSING)
        key = self._by_hash.get(hash_secret(secret))
        if key is None or not key.active_at(self._clock()):
            raise InvalidApiKey(_INCORRECT)
        return key

    def replace(self, keys: Iterable[tuple[str, Key]]) -> None:
        """Swap in a new snapshot of (hash, Key) pairs atomically."""
        self._by_hash = dict(keys)

    def get(self, key_id: str) -> Key | None:
        for key in self._by_hash.values():
            if key.id == key_id:
                return key
        return None

    def __len__(self) -> int:
        return len(self._by_hash)

    def __repr__(self) -> str:
        return f"KeyRing(keys={len(self._by_hash)})"


ANONYMOUS = Key(id="key_anonymous", name="anonymous")


class OpenKeyRing(KeyRing):
    """The ring when keys are switched off (`[auth] enabled = false`): everyone is anonymous.

    For benchmarking the bare relay only; never for a gateway others can reach."""

    def authenticate(self, authorization: str | None) -> Key:
        return ANONYMOUS
