"""Rendezvous (highest random weight) hashing with bounded load: the same order of backends
for the same conversation on every edge and worker, with nothing shared between them.

A conversation's key is a stable 64-bit hash of the first characters of its text (bounded:
at most `hash_prefix_chars` are hashed, once per request). Each backend's weight for a key is
a mix of the key and a hash of the backend's id; backends are tried by falling weight. Adding
or removing a backend moves only the keys whose best backend it is, whatever the order in
which edges learnt of the backends. Bounded load (Mirrokni et al., "Consistent Hashing with
Bounded Loads"): a backend with more than `factor` x the mean load plus `slack` is passed over
for the next in the key's order, so that a popular prefix spills instead of queueing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_MASK = (1 << 64) - 1


def conversation_key(text: str, chars: int) -> int:
    """A process-independent 64-bit hash of the first `chars` characters of `text`."""
    data = text[:chars].encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def backend_seed(backend_id: str) -> int:
    return conversation_key(backend_id, len(backend_id))


def weight(key: int, seed: int) -> int:
    """splitmix64's finalizer of key xor seed: a well-mixed weight from two hashes."""
    z = (key ^ seed) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class Rendezvous:
    """Orders backends for a key; remembers each backend's seed (hashing an id once)."""

    def __init__(self, load_factor: float, slack: int = 1) -> None:
        self._load_factor = load_factor
        self._slack = slack
        self._seeds: dict[str, int] = {}

    def seed(self, backend_id: str) -> int:
        seed = self._seeds.get(backend_id)
        if seed is None:
            seed = self._seeds[backend_id] = backend_seed(backend_id)
        return seed

    def order(self, key: int, backend_ids: Sequence[str]) -> list[int]:
        """Indexes into `backend_ids`, best first for this key."""
        weights = [weight(key, self.seed(b)) for b in backend_ids]
        return sorted(range(len(backend_ids)), key=weights.__getitem__, reverse=True)

    def pick(self, key: int, backend_ids: Sequence[str], loads: Sequence[int]) -> int:
        """The first backend in the key's order whose load is within the bound."""
        count = len(backend_ids)
        if count == 1:
            return 0
        bound = self._load_factor * sum(loads) / count + self._slack
        best, best_weight = -1, -1
        for index, backend in enumerate(backend_ids):
            if loads[index] > bound:
                continue
            score = weight(key, self.seed(backend))
            if score > best_weight:
                best, best_weight = index, score
        return best  # the least loaded backend is always within the bound

    def forget(self, backend_id: str) -> None:
        self._seeds.pop(backend_id, None)
