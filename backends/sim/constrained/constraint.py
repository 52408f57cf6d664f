"""One request's output constraint, as SGLang's grammar manager keys it: ("json", schema text),
("regex", pattern) or ("ebnf", grammar); compiled once, then sampled into fitting text."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from warmgate.backends.sim.constrained.ebnf import ROOT, parse_ebnf
from warmgate.backends.sim.constrained.grammar import GrammarError, Node, Ref, Sampler
from warmgate.backends.sim.constrained.regex import parse_regex
from warmgate.backends.sim.constrained.schema import Instances
from warmgate.backends.sim.constrained.schema_check import check_schema

JSON, REGEX, EBNF = "json", "regex", "ebnf"
ANY_OBJECT = {"type": "object"}  # what json_object and a bare tool call constrain to
SCALES = (1.0, 0.5, 0.2, 0.0)  # tried in turn until the text fits the token budget


class ConstraintError(ValueError):
    """SGLang's abort for a grammar it cannot compile: 400, "Failed to compile ..."."""


class Constraint:
    __slots__ = ("_rules", "_schema", "kind", "optional", "source")

    def __init__(self, kind: str, source: Any, optional: float = 0.6) -> None:
        self.kind = kind
        self.source = source
        self.optional = optional  # share of optional JSON properties written (schema.py)
        self._schema: Any = None
        self._rules: dict[str, Node] = {}

    @property
    def any_object(self) -> bool:
        """Whether it holds the output to no more than "some JSON object" (json_object)."""
        return self.kind == JSON and self.source == ANY_OBJECT

    def compile(self) -> Constraint:
        """Check the constraint as SGLang's XGrammar backend would; ConstraintError if not."""
        try:
            if self.kind == JSON:
                schema = self.source
                if isinstance(schema, str):
                    schema = json.loads(schema)
                check_schema(schema)
                self._schema = schema
            elif self.kind == REGEX:
                self._rules = {ROOT: parse_regex(self.source)}
            else:
                self._rules = parse_ebnf(self.source)
        except (GrammarError, json.JSONDecodeError) as error:
            raise ConstraintError(f"Failed to compile {self.kind} grammar: {error}") from None
        return self

    def text(self, rng: random.Random, fits: Callable[[str], bool]) -> str:
        """A random text the constraint accepts: the first, at shrinking sizes, that `fits`;
        else the smallest (which the token budget will cut, as it cuts a real model)."""
        seed = rng.getrandbits(64)
        text = ""
        for scale in SCALES:
            try:
                text = self._sample(random.Random(seed), scale)
            except GrammarError as error:  # a schema with no instance: fail like a bad grammar
                raise ConstraintError(f"Failed to compile {self.kind} grammar: {error}") from None
            if fits(text):
                return text
        return text

    def _sample(self, rng: random.Random, scale: float) -> str:
        if self.kind == JSON:
            value = Instances(self._schema, rng, scale, self.optional).value()
            return json.dumps(value, ensure_ascii=False)
        return Sampler(self._rules, rng, scale).sample(Ref(ROOT))


def json_text(
    schema: Any, rng: random.Random, fits: Callable[[str], bool], optional: float = 0.6
) -> str:
    """An instance of `schema` as JSON text (ConstraintError if SGLang would refuse it)."""
    return Constraint(JSON, schema, optional).compile().text(rng, fits)


def select(json_schema: Any, regex: str | None, ebnf: str | None) -> Constraint | None:
    """The request's constraint in SGLang's order of precedence (json_schema, regex, ebnf),
    compiled; None when the output is free."""
    if json_schema is not None:
        return Constraint(JSON, json_schema).compile()
    if regex is not None:
        return Constraint(REGEX, regex).compile()
    if ebnf is not None:
        return Constraint(EBNF, ebnf).compile()
    return None
