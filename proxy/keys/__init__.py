"""API keys: the Key record, the in-memory ring that authenticates, the store and its refresher."""

from warmgate.proxy.keys.key import Key, QuotaPeriod, generate_key_id, generate_secret, hash_secret
from warmgate.proxy.keys.refresher import KeyRefresher
from warmgate.proxy.keys.ring import ANONYMOUS, KeyRing, OpenKeyRing
from warmgate.proxy.keys.store import KeyStore, KeyUpdate, open_key_store

__all__ = [
    "ANONYMOUS",
    "Key",
    "KeyRefresher",
    "KeyRing",
    "KeyStore",
    "KeyUpdate",
    "OpenKeyRing",
    "QuotaPeriod",
    "generate_key_id",
    "generate_secret",
    "hash_secret",
    "open_key_store",
]
