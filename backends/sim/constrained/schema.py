"""Seeded random instances of a JSON schema, as a model under SGLang's JSON grammar writes them.

Covers what structured-output clients send: `$ref` into `$defs`/`definitions` (recursion
included), `anyOf`/`oneOf` (one branch; overlapping `oneOf` branches are not told apart),
`allOf` (merged), `enum`, `const`, type lists, objects with `required` and optional properties
and min/max properties, arrays with `items`, `prefixItems` and min/max items, strings with
min/max length, a `pattern` or a format, and numbers within (exclusive) bounds.

`scale` (0..1) sizes the optional parts (string lengths, item counts, optional properties): at 0
the instance is the smallest the schema allows, which is how an answer is fit to max_tokens.
`optional` is the share of optional properties written at full scale: a grammar lets a model
leave any of them out, a model following a schema in its prompt writes nearly all.
"""

from __future__ import annotations

import random
from typing import Any

from warmgate.backends.sim.constrained.formats import FORMATS
from warmgate.backends.sim.constrained.grammar import GrammarError, Sampler
from warmgate.backends.sim.constrained.regex import parse_regex
from warmgate.backends.sim.constrained.schema_check import resolve_ref

MAX_DEPTH = 6  # past it: required properties only, fewest items, non-recursive branches
GIVE_UP_DEPTH = 40  # a schema whose every instance is infinite
WORDS = (
    "alpha", "bravo", "delta", "echo", "lima", "nova", "orbit", "pixel", "quartz", "river",
    "sierra", "tango", "umber", "vivid", "willow", "zephyr", "amber", "cobalt",
)  # fmt: skip
MERGED_LISTS = ("required",)


class Instances:
    def __init__(self, root: Any, rng: random.Random, scale: float, optional: float = 0.6) -> None:
        self.root = root
        self.rng = rng
        self.scale = scale
        self.optional = optional

    def value(self) -> Any:
        return self.of(self.root, 0)

    def of(self, schema: Any, depth: int) -> Any:  # noqa: PLR0911 - one return per keyword
        if depth > GIVE_UP_DEPTH:
            raise GrammarError("the schema has no finite instance (unbounded recursion)")
        if schema is True or schema == {}:
            return self._any(depth)
        if not isinstance(schema, dict):
            raise GrammarError("the schema `false` has no instance")
        if "$ref" in schema:
            target = resolve_ref(self.root, schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            merged = merge(target, rest) if isinstance(target, dict) and rest else target
            return self.of(merged, depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                resolved = resolve_ref(self.root, part["$ref"]) if "$ref" in part else part
                merged = merge(merged, resolved)
            return self.of(merged, depth)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                rest = {k: v for k, v in schema.items() if k != keyword}
                branch = self._branch(schema[keyword], depth)
                return self.of(merge(rest, branch) if isinstance(branch, dict) else branch, depth)
        return self._typed(self._kind(schema, depth), schema, depth)

    def _branch(self, options: list[Any], depth: int) -> Any:
        if depth < MAX_DEPTH:
            return self.rng.choice(options)
        flat = [o for o in options if isinstance(o, dict) and "$ref" not in o]
        nulls = [o for o in flat if o.get("type") == "null"]
        return (nulls or flat or options)[0]

    def _kind(self, schema: dict[str, Any], depth: int) -> str:  # noqa: PLR0911 - one per type
        kind = schema.get("type")
        if isinstance(kind, list):
            others = [k for k in kind if k != "null"]
            if not others or ("null" in kind and (depth >= MAX_DEPTH or self.rng.random() < 0.2)):
                return "null"
            return str(self.rng.choice(others))
        if kind is not None:
            return str(kind)
        if {"properties", "required", "additionalProperties", "minProperties"} & set(schema):
            return "object"
        if {"items", "prefixItems", "minItems", "maxItems"} & set(schema):
            return "array"
        if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(schema):
            return "number"
        return "string"

    def _typed(self, kind: str, schema: dict[str, Any], depth: int) -> Any:  # noqa: PLR0911
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None

    def _any(self, depth: int) -> Any:
        kind = self.rng.choice(("string", "integer", "number", "boolean"))
        return self._typed(kind, {}, depth)

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        keep = 0.0 if depth >= MAX_DEPTH else self.optional * self.scale
        names = [n for n in properties if n in required or self.rng.random() < keep]
        optional = [n for n in properties if n not in names]
        least = int(schema.get("minProperties", 0))
        while len(names) < least and optional:
            names.append(optional.pop(0))
        most = schema.get("maxProperties")
        if most is not None:
            names = [n for n in names if n in required] + [n for n in names if n not in required]
            names = names[: max(int(most), len(required))]
        out = {name: self.of(properties[name], depth + 1) for name in properties if name in names}
        extra = schema.get("additionalProperties", not properties)
        wanted = least - len(out)
        if extra is not False and not properties and depth < MAX_DEPTH and self.scale > 0:
            wanted = max(wanted, self.rng.randint(1, 1 + round(2 * self.scale)))
        if most is not None:
            wanted = min(wanted, int(most) - len(out))
        value_schema = extra if isinstance(extra, dict) else {}
        while wanted > 0:
            if extra is False:
                raise GrammarError("minProperties cannot be met without additional properties")
            key = f"{self.rng.choice(WORDS)}_{len(out)}"
            if key not in out:
                out[key] = self.of(value_schema, depth + 1)
                wanted -= 1
        return out

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        if isinstance(items, list):  # draft-04 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        spare = 0 if depth >= MAX_DEPTH else round(3 * self.scale)
        floor = low if low or depth >= MAX_DEPTH or self.scale == 0 else 1
        count = self.rng.randint(floor, max(floor, low + spare))
        count = max(count, min(len(prefix), low))
        if high is not None:
            count = min(count, int(high))
        if items is False:
            count = min(count, len(prefix))
        out = [self.of(prefix[i], depth + 1) for i in range(min(count, len(prefix)))]
        out += [self.of(items, depth + 1) for _ in range(count - len(out))]
        return out

    def _string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        if fmt in FORMATS:
            return FORMATS[fmt](self.rng)
        if "pattern" in schema:
            return Sampler({}, self.rng, self.scale).sample(parse_regex(schema["pattern"]))
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        count = self.rng.randint(1, 1 + round(3 * self.scale))
        text = " ".join(self.rng.choice(WORDS) for _ in range(count))
        while len(text) < low:
            text += " " + self.rng.choice(WORDS)
        if high is not None:
            text = text[: int(high)].rstrip() or text[: int(high)]
            if len(text) < low:
                text = text.ljust(low, "x")
        return text

    def _bounds(self, schema: dict[str, Any], step: float) -> tuple[float, float]:
        low: float | None = schema.get("minimum")
        high: float | None = schema.get("maximum")
        if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
            low = schema["exclusiveMinimum"] + step
        if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
            high = schema["exclusiveMaximum"] - step
        if low is None and high is None:
            return 0.0, 100.0
        if low is None:
            assert high is not None
            low = min(0.0, high - 100.0)
        if high is None:
            high = max(low + 100.0, 100.0)
        if low > high:
            raise GrammarError("the numeric bounds leave no value")
        return float(low), float(high)

    def _integer(self, schema: dict[str, Any]) -> int:
        low, high = self._bounds(schema, 1)
        low_int, high_int = -int(-low // 1), int(high // 1)
        if low_int > high_int:
            raise GrammarError("no integer lies within the bounds")
        return self.rng.randint(low_int, high_int)

    def _number(self, schema: dict[str, Any]) -> float:
        low, high = self._bounds(schema, 0.01)
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Two schemas' keywords as one (properties merged, required lists joined)."""
    out = {**base, **extra}
    if "properties" in base and "properties" in extra:
        out["properties"] = {**base["properties"], **extra["properties"]}
    for name in MERGED_LISTS:
        if name in base and name in extra:
            out[name] = list(dict.fromkeys([*base[name], *extra[name]]))
    return out
