"""The regular expressions SGLang users constrain output with, parsed into a string grammar.

Supported: literals and escapes, `.`, classes (`[a-z0-9_]`, `[^"]`, `\\d \\w \\s` and their
negations), groups (`(...)`, `(?:...)`, `(?P<name>...)`), alternation, and the quantifiers
`* + ? {n} {n,} {n,m}` (a trailing lazy `?` is accepted). `^` and `$` are accepted and match
nothing, since the whole output is the match. Lookarounds and backreferences are refused, as
SGLang's grammar backend (XGrammar) refuses them: the request gets a 400.
"""

from __future__ import annotations

from warmgate.backends.sim.constrained.grammar import (
    Alt,
    Chars,
    GrammarError,
    Node,
    Repeat,
    Seq,
    Text,
    class_escape,
    escape_value,
    parse_class,
)

DOT = Chars(((10, 10),), negated=True)


def parse_regex(pattern: str) -> Node:
    parser = _Parser(pattern)
    node = parser.alternation()
    if parser.index < len(pattern):
        raise GrammarError(f"unbalanced parenthesis at position {parser.index}")
    return node


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.index = 0

    def _peek(self) -> str:
        return self.text[self.index] if self.index < len(self.text) else ""

    def alternation(self) -> Node:
        options = [self.sequence()]
        while self._peek() == "|":
            self.index += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Alt(options)

    def sequence(self) -> Node:
        items: list[Node] = []
        while self._peek() not in ("", "|", ")"):
            atom = self.atom()
            items.append(self.quantified(atom))
        return items[0] if len(items) == 1 else Seq(items)

    def atom(self) -> Node:
        text, start = self.text, self.index
        char = text[start]
        if char == "(":
            return self.group()
        if char == "[":
            node, self.index = parse_class(text, start)
            return node
        if char in "*+?":
            raise GrammarError(f"nothing to repeat at position {start}")
        if char == "{" and self._quantifier_at(start) is not None:
            raise GrammarError(f"nothing to repeat at position {start}")
        self.index += 1
        if char == ".":
            return DOT
        if char in "^$":
            return Seq([])
        if char != "\\":
            return Text(char)
        return self.escape(start)

    def escape(self, start: int) -> Node:
        if self.index >= len(self.text):
            raise GrammarError("pattern ends with a backslash")
        letter = self.text[self.index]
        if letter.isdigit() and letter != "0":
            raise GrammarError(f"backreferences are not supported (\\{letter} at {start})")
        if letter in "bBAzZ":
            self.index += 1
            return Seq([])  # anchors: the whole output is the match
        escaped = class_escape(letter)
        if escaped is not None:
            self.index += 1
            return escaped
        value, self.index = escape_value(self.text, self.index)
        return Text(value)

    def group(self) -> Node:
        start = self.index
        self.index += 1
        if self.text.startswith("?", self.index):
            head = self.text[self.index : self.index + 3]
            if head.startswith(("?=", "?!", "?<=", "?<!")):
                raise GrammarError(f"lookaround assertions are not supported (at {start})")
            if head.startswith("?:"):
                self.index += 2
            elif head.startswith(("?P<", "?<")):
                close = self.text.find(">", self.index)
                if close < 0:
                    raise GrammarError(f"unterminated group name at position {start}")
                self.index = close + 1
            else:
                raise GrammarError(f"unknown group extension at position {start}")
        node = self.alternation()
        if self._peek() != ")":
            raise GrammarError(f"missing ), unterminated subpattern at position {start}")
        self.index += 1
        return node

    def quantified(self, atom: Node) -> Node:
        char = self._peek()
        if char in ("*", "+", "?"):
            self.index += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{" and (bounds := self._quantifier_at(self.index)) is not None:
            low, high, self.index = bounds
        else:
            return atom
        if self._peek() == "?":  # lazy: the same language
            self.index += 1
        if self._peek() in ("*", "+") or (
            self._peek() == "{" and self._quantifier_at(self.index) is not None
        ):
            raise GrammarError(f"multiple repeat at position {self.index}")
        return Repeat(atom, low, high)

    def _quantifier_at(self, start: int) -> tuple[int, int | None, int] | None:
        """`{n}`, `{n,}` or `{n,m}` at `start`: (low, high, index after); None if it is not
        one (then `{` is a literal, as in Python's and XGrammar's regexes)."""
        close = self.text.find("}", start)
        if close < 0:
            return None
        body = self.text[start + 1 : close]
        low_text, comma, high_text = body.partition(",")
        if not low_text.isdigit() or (high_text and not high_text.isdigit()):
            return None
        low = int(low_text)
        high = None if comma and not high_text else int(high_text or low_text)
        if high is not None and high < low:
            raise GrammarError(f"min repeat greater than max repeat at position {start}")
        return low, high, close + 1
