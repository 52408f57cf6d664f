"""A grammar of strings (what a regex or an EBNF grammar compiles to) and its seeded sampler.

Nodes are small immutable objects; `Sampler` expands one into a random string the grammar
accepts. Recursion is bounded: past `MAX_DEPTH` every choice takes its shortest expansion, so a
recursive grammar (nested lists, arithmetic) always terminates.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

MAX_DEPTH = 12
PRINTABLE = [(32, 126)]  # what a negated class or `.` draws from
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}
CLASS_ESCAPES: dict[str, tuple[tuple[int, int], ...]] = {
    "d": ((48, 57),),
    "w": ((48, 57), (65, 90), (95, 95), (97, 122)),
    "s": ((32, 32), (9, 10), (13, 13)),
}


class GrammarError(ValueError):
    """A pattern or grammar that cannot be compiled (SGLang answers 400 with the message)."""


class Node:
    __slots__ = ()


class Text(Node):
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Chars(Node):
    """One character from inclusive code-point ranges (or from printable ASCII outside them)."""

    __slots__ = ("negated", "ranges")

    def __init__(self, ranges: tuple[tuple[int, int], ...], negated: bool = False) -> None:
        self.ranges = ranges
        self.negated = negated


class Seq(Node):
    __slots__ = ("items",)

    def __init__(self, items: list[Node]) -> None:
        self.items = items


class Alt(Node):
    __slots__ = ("options",)

    def __init__(self, options: list[Node]) -> None:
        self.options = options


class Repeat(Node):
    __slots__ = ("high", "item", "low")

    def __init__(self, item: Node, low: int, high: int | None) -> None:
        self.item = item
        self.low = low
        self.high = high


class Ref(Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def class_escape(letter: str) -> Chars | None:
    """`\\d \\w \\s` and their negations `\\D \\W \\S`."""
    ranges = CLASS_ESCAPES.get(letter.lower())
    if ranges is None:
        return None
    return Chars(ranges, negated=letter.isupper())


def parse_class(text: str, start: int) -> tuple[Chars, int]:
    """A `[...]` class beginning at `text[start] == "["`; returns it and the index after `]`."""
    index = start + 1
    negated = index < len(text) and text[index] == "^"
    index += negated
    ranges: list[tuple[int, int]] = []
    first = True
    while True:
        if index >= len(text):
            raise GrammarError(f"unterminated character class at position {start}")
        char = text[index]
        if char == "]" and not first:
            return Chars(tuple(ranges), negated), index + 1
        first = False
        low, index, escaped_class = _class_atom(text, index)
        if escaped_class is not None:
            ranges += escaped_class.ranges if not escaped_class.negated else []
            continue
        if index + 1 < len(text) and text[index] == "-" and text[index + 1] != "]":
            high, index, other = _class_atom(text, index + 1)
            if other is not None:
                raise GrammarError(f"bad character range at position {index}")
            if high < low:
                raise GrammarError(f"bad character range {chr(low)}-{chr(high)}")
            ranges.append((low, high))
        else:
            ranges.append((low, low))


def _class_atom(text: str, index: int) -> tuple[int, int, Chars | None]:
    char = text[index]
    if char != "\\":
        return ord(char), index + 1, None
    if index + 1 >= len(text):
        raise GrammarError("trailing backslash")
    letter = text[index + 1]
    escaped = class_escape(letter)
    if escaped is not None:
        return 0, index + 2, escaped
    value, end = escape_value(text, index + 1)
    return ord(value), end, None


def escape_value(text: str, index: int) -> tuple[str, int]:
    """The character an escape stands for, `text[index]` being the letter after the backslash."""
    letter = text[index]
    if letter in ESCAPES:
        return ESCAPES[letter], index + 1
    width = {"x": 2, "u": 4, "U": 8}.get(letter)
    if width is not None:
        digits = text[index + 1 : index + 1 + width]
        if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise GrammarError(f"bad escape \\{letter}{digits}")
        return chr(int(digits, 16)), index + 1 + width
    return letter, index + 1


class Sampler:
    """Random strings of a grammar. `scale` (0..1) shrinks optional repetitions toward their
    minimum, so a caller can fit an answer into a token budget."""

    def __init__(self, rules: Mapping[str, Node], rng: random.Random, scale: float) -> None:
        self.rules = rules
        self.rng = rng
        self.scale = scale
        self._shortest: dict[int, int] = {}
        self._rule_shortest = shortest_rule_lengths(rules)

    def sample(self, node: Node) -> str:
        out: list[str] = []
        self._expand(node, out, 0)
        return "".join(out)

    def _expand(self, node: Node, out: list[str], depth: int) -> None:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Chars):
            out.append(self._char(node))
        elif isinstance(node, Seq):
            for item in node.items:
                self._expand(item, out, depth)
        elif isinstance(node, Alt):
            if depth > MAX_DEPTH:
                option = min(node.options, key=self.shortest)
            else:
                option = self.rng.choice(node.options)
            self._expand(option, out, depth)
        elif isinstance(node, Repeat):
            for _ in range(self._count(node, depth)):
                self._expand(node.item, out, depth)
        elif isinstance(node, Ref):
            self._expand(self.rules[node.name], out, depth + 1)

    def _count(self, node: Repeat, depth: int) -> int:
        if depth > MAX_DEPTH:
            return node.low
        spare = round(3 * self.scale)
        high = node.low + spare if node.high is None else min(node.high, node.low + spare)
        return self.rng.randint(node.low, max(node.low, high))

    def _char(self, node: Chars) -> str:
        ranges = node.ranges
        if node.negated:
            banned: set[int] = set()
            for low, high in ranges:
                banned.update(range(max(low, 32), min(high, 126) + 1))
            allowed = [c for c in range(32, 127) if c not in banned]
            if not allowed:
                raise GrammarError("a negated character class excludes every printable character")
            return chr(self.rng.choice(allowed))
        if not ranges:
            raise GrammarError("an empty character class matches nothing")
        low, high = self.rng.choice(ranges)
        return chr(self.rng.randint(low, high))

    def shortest(self, node: Node) -> int:
        key = id(node)
        if key not in self._shortest:
            self._shortest[key] = shortest_length(node, self._rule_shortest)
        return self._shortest[key]


def shortest_length(node: Node, rules: Mapping[str, int]) -> int:  # noqa: PLR0911 - one per kind
    """Characters in the shortest expansion (rules: each rule's shortest, or a large bound)."""
    if isinstance(node, Text):
        return len(node.text)
    if isinstance(node, Chars):
        return 1
    if isinstance(node, Seq):
        return sum(shortest_length(item, rules) for item in node.items)
    if isinstance(node, Alt):
        return min(shortest_length(option, rules) for option in node.options)
    if isinstance(node, Repeat):
        return node.low * shortest_length(node.item, rules) if node.low else 0
    if isinstance(node, Ref):
        return rules.get(node.name, 1 << 30)
    return 0


def shortest_rule_lengths(rules: Mapping[str, Node]) -> dict[str, int]:
    """Each rule's shortest expansion, by fixed-point iteration (recursive rules included)."""
    lengths = dict.fromkeys(rules, 1 << 30)
    changed = True
    while changed:
        changed = False
        for name, node in rules.items():
            length = min(shortest_length(node, lengths), 1 << 30)
            if length < lengths[name]:
                lengths[name] = length
                changed = True
    return lengths
