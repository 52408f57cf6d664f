"""Cache-aware routing, as SGLang's router does it for HTTP workers.

While load is balanced, a request goes to the backend that was sent the longest prefix of its
text, if more than `cache_threshold` of the text matched: that backend's KV cache most likely
still holds the prefix. When load is imbalanced (max - min > abs threshold AND max > rel
threshold * min, in requests in flight), it goes to the least loaded backend; ties go to the
backend with the least text in the tree, i.e. the most cache room. Otherwise, when the match
ends within the first `hash_prefix_chars` (a new conversation, or a turn another edge routed
before), it goes where rendezvous hashing of those characters sends it (with bounded load):
every edge and worker makes the same choice without sharing its tree, so a follow-up that lands
on another edge still finds its replica. A text whose match runs past them (conversations that
share a long system prompt) goes to the least loaded backend as above, since all such
conversations hash alike. The chosen backend is recorded for the text either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from warmgate.proxy.routing.policies import Candidate, RouteHint
from warmgate.proxy.routing.prefix_tree import PrefixTree
from warmgate.proxy.routing.rendezvous import Rendezvous, conversation_key
from warmgate.proxy.settings import RoutingSettings


class CacheAware:
    def __init__(self, settings: RoutingSettings) -> None:
        self._settings = settings
        self._trees: dict[str, PrefixTree] = {}
        self._rendezvous = Rendezvous(settings.hash_load_factor, settings.hash_load_slack)

    def tree(self, model: str) -> PrefixTree:
        tree = self._trees.get(model)
        if tree is None:
            tree = self._trees[model] = PrefixTree(self._settings.max_tree_chars)
        return tree

    def choose(self, model: str, candidates: Sequence[Candidate], hint: RouteHint) -> int:
        settings = self._settings
        tree = self.tree(model)
        text = hint.prefix
        end = min(len(text), settings.max_prefix_chars)
        index = -1
        if end > 0 and not self.imbalanced(candidates):
            ids = [c.backend_id for c in candidates]
            matched, tenant = tree.match(text, end, ids)
            if tenant is not None and matched / end > settings.cache_threshold:
                index = ids.index(tenant)
            elif matched < settings.hash_prefix_chars:
                # the hashed characters tell this text apart from all the tree holds: every
                # edge sends it to the same place. Past them (a long shared system prompt),
                # conversations would share one key and pile up: spread them by load instead.
                key = conversation_key(text, settings.hash_prefix_chars)
                index = self._rendezvous.pick(key, ids, [c.load for c in candidates])
        if index < 0:
            index = min(
                range(len(candidates)),
                key=lambda i: (candidates[i].load, tree.tenant_chars(candidates[i].backend_id)),
            )
        if end > 0:
            tree.insert(text, end, candidates[index].backend_id)
        return index

    def imbalanced(self, candidates: Sequence[Candidate]) -> bool:
        loads = [c.load for c in candidates]
        low, high = min(loads), max(loads)
        settings = self._settings
        return (
            high - low > settings.balance_abs_threshold
            and high > settings.balance_rel_threshold * low
        )

    def forget(self, backend_id: str) -> None:
        for tree in self._trees.values():
            tree.forget(backend_id)
        self._rendezvous.forget(backend_id)
