"""An approximate prefix tree of request text: which backend saw which prefix, and when.

A radix tree over characters (as SGLang's router does for HTTP workers): each node holds an
edge label and the backends ("tenants") that were sent text through it, with a logical time
of last use. The invariant: a node's tenants include its children's tenants. Memory is bounded
by `max_chars`: each node counts its label's characters and `NODE_CHARS` for itself (its object
and dictionaries take about 450 bytes, as much as that many characters of ASCII text), so the
bound holds for many short prompts as for a few long ones; beyond it the least recently used
leaves go first.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection

_GALLOP = 256
# What a node's bookkeeping weighs against `max_chars` (tracemalloc, CPython 3.11: 457 bytes a
# node beside its label's characters, whatever the label's length).
NODE_CHARS = 450


class _Node:
    __slots__ = ("children", "label", "parent", "tenants", "touched")

    def __init__(self, label: str, parent: _Node | None) -> None:
        self.label = label
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.tenants: dict[str, int] = {}
        self.touched = 0


def common_prefix_length(label: str, text: str, pos: int, end: int) -> int:
    """How many leading characters of `label` equal `text[pos:end]`, without copying text."""
    n = min(len(label), end - pos)
    if n <= 0:
        return 0
    if n == len(label) and text.startswith(label, pos):
        return n
    lo, step = 0, _GALLOP
    while lo < n:
        hi = min(lo + step, n)
        if not text.startswith(label[lo:hi], pos + lo):
            break
        lo, step = hi, step * 2
    else:
        return n
    # the first mismatch lies in [lo, hi): binary search on the matching length
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if text.startswith(label[lo:mid], pos + lo):
            lo = mid
        else:
            hi = mid
    return lo


class PrefixTree:
    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.chars = 0  # of labels
        self.nodes = 0  # the root aside
        self._root = _Node("", None)
        self._tick = 0
        self._tenant_chars: dict[str, int] = {}

    @property
    def size(self) -> int:
        """What the bound applies to: the labels' characters and each node's weight."""
        return self.chars + self.nodes * NODE_CHARS

    def tenant_chars(self, tenant: str) -> int:
        """Characters inserted for a tenant and not evicted: how much of its cache we fill."""
        return self._tenant_chars.get(tenant, 0)

    def match(self, text: str, end: int, allowed: Collection[str]) -> tuple[int, str | None]:
        """The longest prefix of text[:end] sent to one of `allowed`, and that tenant.

        Among the tenants of the deepest matching node, the most recently used one wins.
        """
        node, pos = self._root, 0
        best: _Node | None = None
        while pos < end:
            child = node.children.get(text[pos])
            if child is None or child.tenants.keys().isdisjoint(allowed):
                break
            best = child
            label = child.label
            if pos + len(label) <= end and text.startswith(label, pos):
                pos += len(label)  # the whole edge matches: the common case, no search
                node = child
                continue
            pos += common_prefix_length(label, text, pos, end)
            break
        if best is None:
            return 0, None
        tenants = best.tenants
        tenant = max((t for t in allowed if t in tenants), key=tenants.__getitem__)
        return pos, tenant

    def insert(self, text: str, end: int, tenant: str) -> None:
        """Record that text[:end] was sent to `tenant`."""
        self._tick += 1
        tick = self._tick
        node, pos = self._root, 0
        self._touch(node, tenant, tick)
        while pos < end:
            child = node.children.get(text[pos])
            if child is None:
                leaf = _Node(text[pos:end], node)
                node.children[text[pos]] = leaf
                self._grow(tenant, end - pos)
                self._touch(leaf, tenant, tick)
                break
            label = child.label
            if pos + len(label) <= end and text.startswith(label, pos):
                k = len(label)
            else:
                k = common_prefix_length(label, text, pos, end)
                if k < len(label):
                    child = self._split(child, k)
            if tenant not in child.tenants:
                self._tenant_chars[tenant] = self._tenant_chars.get(tenant, 0) + len(child.label)
            self._touch(child, tenant, tick)
            pos += k
            node = child
        if self.size > self.max_chars:
            self.evict(int(self.max_chars * 0.9))

    def _grow(self, tenant: str, count: int) -> None:
        self.chars += count
        self.nodes += 1
        self._tenant_chars[tenant] = self._tenant_chars.get(tenant, 0) + count

    @staticmethod
    def _touch(node: _Node, tenant: str, tick: int) -> None:
        node.tenants[tenant] = tick
        node.touched = tick

    def _split(self, child: _Node, at: int) -> _Node:
        """Cut child's edge at `at`: a new middle node takes the first part."""
        parent = child.parent
        assert parent is not None
        middle = _Node(child.label[:at], parent)
        self.nodes += 1
        middle.tenants = dict(child.tenants)
        middle.touched = child.touched
        parent.children[middle.label[0]] = middle
        child.label = child.label[at:]
        child.parent = middle
        middle.children[child.label[0]] = child
        return middle

    def evict(self, target_size: int) -> None:
        """Drop least recently used leaves until `size` is at most `target_size`."""
        heap = [(leaf.touched, id(leaf), leaf) for leaf in self._leaves()]
        heapq.heapify(heap)
        while heap and self.size > target_size:
            _, _, leaf = heapq.heappop(heap)
            parent = leaf.parent
            if parent is None or leaf.children:
                continue
            self._remove(leaf)
            if parent is not self._root and not parent.children:
                heapq.heappush(heap, (parent.touched, id(parent), parent))

    def forget(self, tenant: str) -> None:
        """Remove a tenant everywhere; nodes left without tenants go with it."""
        stack = [self._root]
        while stack:
            node = stack.pop()
            node.tenants.pop(tenant, None)
            for child in list(node.children.values()):
                if tenant in child.tenants and len(child.tenants) == 1:
                    self._remove_subtree(child)
                else:
                    stack.append(child)
        self._tenant_chars.pop(tenant, None)

    def _leaves(self) -> list[_Node]:
        leaves, stack = [], list(self._root.children.values())
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(node.children.values())
            else:
                leaves.append(node)
        return leaves

    def _remove(self, node: _Node) -> None:
        parent = node.parent
        assert parent is not None
        del parent.children[node.label[0]]
        node.parent = None
        self.chars -= len(node.label)
        self.nodes -= 1
        for tenant in node.tenants:
            left = self._tenant_chars.get(tenant, 0) - len(node.label)
            self._tenant_chars[tenant] = max(left, 0)

    def _remove_subtree(self, node: _Node) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            stack.extend(current.children.values())
            self.chars -= len(current.label)
            self.nodes -= 1
            for tenant in current.tenants:
                left = self._tenant_chars.get(tenant, 0) - len(current.label)
                self._tenant_chars[tenant] = max(left, 0)
        parent = node.parent
        assert parent is not None
        del parent.children[node.label[0]]
        node.parent = None
