"""EBNF grammars in the GBNF dialect that SGLang's `ebnf` parameter takes (XGrammar's):

    root   ::= answer ("," answer)*
    answer ::= "yes" | "no" | [0-9]+

Rules are `name ::= body`; a body has alternatives `|`, sequences, string literals, character
classes, rule names, groups and the quantifiers `* + ? {m} {m,} {m,n}`; `#` starts a comment.
Generation starts at `root`. A grammar without `root`, with an undefined rule or with a syntax
error gets a 400, as SGLang answers a grammar its backend cannot compile.
"""

from __future__ import annotations

import re

from warmgate.backends.sim.constrained.grammar import (
    Alt,
    GrammarError,
    Node,
    Ref,
    Repeat,
    Seq,
    Text,
    escape_value,
    parse_class,
)

ROOT = "root"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_RULE_START = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\s*::=")
_QUANTIFIER = re.compile(r"\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}")


def parse_ebnf(source: str) -> dict[str, Node]:
    """The grammar's rules by name; raises GrammarError for what cannot be compiled."""
    parser = _Parser(source)
    rules: dict[str, Node] = {}
    parser.skip_space()
    while not parser.at_end():
        name = parser.rule_head()
        if name in rules:
            raise GrammarError(f'Rule "{name}" is defined multiple times')
        rules[name] = parser.alternation()
        parser.skip_space()
    if ROOT not in rules:
        raise GrammarError(f'The root rule with name "{ROOT}" is not found.')
    for name, node in rules.items():
        _check_refs(node, rules, name)
    return rules


def _check_refs(node: Node, rules: dict[str, Node], rule: str) -> None:
    if isinstance(node, Ref) and node.name not in rules:
        raise GrammarError(f'Rule "{node.name}" is not defined (used in rule "{rule}")')
    for child in getattr(node, "items", None) or getattr(node, "options", None) or ():
        _check_refs(child, rules, rule)
    if isinstance(node, Repeat):
        _check_refs(node.item, rules, rule)


class _Parser:
    def __init__(self, source: str) -> None:
        self.text = source
        self.index = 0

    def at_end(self) -> bool:
        return self.index >= len(self.text)

    def skip_space(self) -> None:
        text = self.text
        while self.index < len(text):
            if text[self.index].isspace():
                self.index += 1
            elif text[self.index] == "#":
                newline = text.find("\n", self.index)
                self.index = len(text) if newline < 0 else newline + 1
            else:
                return

    def rule_head(self) -> str:
        match = _RULE_START.match(self.text, self.index)
        if match is None:
            raise GrammarError(f"expected a rule definition `name ::= ...` at {self._where()}")
        name_match = _NAME.match(self.text, self.index)
        assert name_match is not None
        self.index = match.end()
        return name_match.group()

    def _where(self) -> str:
        line = self.text.count("\n", 0, self.index) + 1
        column = self.index - (self.text.rfind("\n", 0, self.index) + 1) + 1
        return f"line {line}, column {column}"

    def _ends_sequence(self) -> bool:
        self.skip_space()
        if self.at_end() or self.text[self.index] in "|)":
            return True
        return _RULE_START.match(self.text, self.index) is not None

    def alternation(self) -> Node:
        options = [self.sequence()]
        while not self.at_end() and self.text[self.index] == "|":
            self.index += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Alt(options)

    def sequence(self) -> Node:
        items: list[Node] = []
        while not self._ends_sequence():
            items.append(self.quantified(self.element()))
        return items[0] if len(items) == 1 else Seq(items)

    def element(self) -> Node:
        text, start = self.text, self.index
        char = text[start]
        if char == '"':
            return self.literal()
        if char == "[":
            chars, self.index = parse_class(text, start)
            return chars
        if char == "(":
            self.index += 1
            group = self.alternation()
            self.skip_space()
            if self.at_end() or text[self.index] != ")":
                raise GrammarError(f"expected ) at {self._where()}")
            self.index += 1
            return group
        name = _NAME.match(text, start)
        if name is None:
            raise GrammarError(f"unexpected character {char!r} at {self._where()}")
        self.index = name.end()
        return Ref(name.group())

    def literal(self) -> Node:
        text = self.text
        self.index += 1
        out: list[str] = []
        while True:
            if self.at_end() or text[self.index] == "\n":
                raise GrammarError(f"unterminated string literal at {self._where()}")
            char = text[self.index]
            if char == '"':
                self.index += 1
                return Text("".join(out))
            if char == "\\":
                value, self.index = escape_value(text, self.index + 1)
                out.append(value)
            else:
                out.append(char)
                self.index += 1

    def quantified(self, element: Node) -> Node:
        if self.at_end():
            return element
        char = self.text[self.index]
        if char in "*+?":
            self.index += 1
            least, most = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
            return Repeat(element, least, most)
        match = _QUANTIFIER.match(self.text, self.index)
        if match is None:
            return element
        self.index = match.end()
        low = int(match.group(1))
        if match.group(2) is None:
            high: int | None = low
        else:
            high = int(match.group(3)) if match.group(3) else None
        if high is not None and high < low:
            raise GrammarError(f"repetition {{{low},{high}}} has max < min at {self._where()}")
        return Repeat(element, low, high)
