"""What SGLang 0.5.23 refuses in a JSON schema before any token is generated.

Two kinds of refusal, both answered 400 "Failed to compile json grammar: <reason>":
- the keywords and string formats its XGrammar backend would silently ignore, refused by
  sglang/srt/constrained/json_schema_validation.py (the reasons here are worded as it words
  them);
- schemas XGrammar cannot compile at all (an unknown type, a `$ref` that points nowhere, a
  `pattern` that is no regex, contradictory bounds). XGrammar's own wording of these is not
  reproduced: the simulator says what is wrong in its own words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from warmgate.backends.sim.constrained.formats import FORMATS
from warmgate.backends.sim.constrained.grammar import GrammarError
from warmgate.backends.sim.constrained.regex import parse_regex

TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
IGNORED_BY_XGRAMMAR = frozenset(
    {"contains", "dependentRequired", "dependentSchemas", "else", "if", "maxContains",
     "minContains", "multipleOf", "not", "then", "uniqueItems"}
)  # fmt: skip
ONE_SUBSCHEMA = ("additionalItems", "additionalProperties", "contains", "contentSchema", "else",
                 "if", "items", "not", "propertyNames", "then", "unevaluatedItems",
                 "unevaluatedProperties")  # fmt: skip
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SUBSCHEMA_MAPS = ("$defs", "definitions", "dependentSchemas", "patternProperties", "properties")
BOUNDS = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum"),
          ("minProperties", "maxProperties"))  # fmt: skip


def check_schema(schema: Any) -> None:
    """Raise GrammarError with the reason SGLang gives for a schema it will not compile."""
    check_structure(schema)
    for subschema, pointer in subschemas(schema):
        _check_xgrammar_support(subschema, pointer)


def check_structure(schema: Any) -> None:
    """Raise GrammarError for a schema that is not a well-formed JSON schema (what SGLang's
    check of tool `parameters` refuses, besides what no grammar can be built from)."""
    if not isinstance(schema, (dict, bool)):
        raise GrammarError("a JSON schema must be an object or a boolean")
    for subschema, pointer in subschemas(schema):
        _check_structure(subschema, pointer, schema)


def subschemas(schema: Any, pointer: str = "#") -> Iterator[tuple[dict[str, Any], str]]:
    """Every schema-valued node with its JSON pointer (instance data such as enums skipped)."""
    if not isinstance(schema, dict):
        return
    yield schema, pointer
    for keyword in ONE_SUBSCHEMA:
        child = schema.get(keyword)
        if isinstance(child, dict):
            yield from subschemas(child, f"{pointer}/{keyword}")
        elif keyword == "items" and isinstance(child, list):
            for index, item in enumerate(child):
                yield from subschemas(item, f"{pointer}/{keyword}/{index}")
    for keyword in SUBSCHEMA_LISTS:
        children = schema.get(keyword)
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield from subschemas(child, f"{pointer}/{keyword}/{index}")
    for keyword in SUBSCHEMA_MAPS:
        children = schema.get(keyword)
        if isinstance(children, dict):
            for name, child in children.items():
                escaped = name.replace("~", "~0").replace("/", "~1")
                yield from subschemas(child, f"{pointer}/{keyword}/{escaped}")


def _describes_string(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind is None or kind == "string" or (isinstance(kind, list) and "string" in kind)


def _check_xgrammar_support(schema: dict[str, Any], pointer: str) -> None:
    def refuse(reason: str) -> None:
        raise GrammarError(f"JSON Schema at {pointer} is not supported by xgrammar: {reason}")

    ignored = sorted(IGNORED_BY_XGRAMMAR.intersection(schema))
    if ignored:
        refuse(f"keyword(s) {', '.join(ignored)} would be ignored")
    if not _describes_string(schema):
        return
    if "format" in schema:
        name = schema["format"]
        if not isinstance(name, str) or name not in FORMATS:
            refuse(f"string format {name!r} is not implemented")
    groups: list[str] = [name for name in ("format", "pattern") if name in schema]
    if "minLength" in schema or "maxLength" in schema:
        groups.append("minLength/maxLength")
    if len(groups) > 1:
        refuse(f"constraints {', '.join(groups)} cannot be enforced together")


def _check_structure(schema: dict[str, Any], pointer: str, root: Any) -> None:  # noqa: PLR0912 - one check per keyword
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for name in kinds:
        if name not in TYPES:
            raise GrammarError(f"{pointer}: unsupported type {name!r}")
    if "properties" in schema and not isinstance(schema["properties"], dict):
        raise GrammarError(f"{pointer}: 'properties' must be an object")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
        raise GrammarError(f"{pointer}: 'required' must be a list of property names")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise GrammarError(f"{pointer}: 'enum' must be a non-empty list")
    for keyword in SUBSCHEMA_LISTS:
        if keyword in schema and (not isinstance(schema[keyword], list) or not schema[keyword]):
            raise GrammarError(f"{pointer}: '{keyword}' must be a non-empty list of schemas")
    for low_name, high_name in BOUNDS:
        low, high = schema.get(low_name), schema.get(high_name)
        for name, value in ((low_name, low), (high_name, high)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise GrammarError(f"{pointer}: '{name}' must be a number")
        if low is not None and high is not None and low > high:
            raise GrammarError(f"{pointer}: '{low_name}' ({low}) exceeds '{high_name}' ({high})")
    if "pattern" in schema:
        pattern = schema["pattern"]
        if not isinstance(pattern, str):
            raise GrammarError(f"{pointer}: 'pattern' must be a string")
        try:
            parse_regex(pattern)
        except GrammarError as error:
            raise GrammarError(f"{pointer}: invalid 'pattern' {pattern!r}: {error}") from None
    if "$ref" in schema:
        resolve_ref(root, schema["$ref"])


def resolve_ref(root: Any, ref: Any) -> Any:
    """The schema a local `$ref` points to (`#`, `#/$defs/Name`, any JSON pointer)."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise GrammarError(f"only local references are supported, got $ref {ref!r}")
    node = root
    for raw in ref[1:].split("/")[1:]:
        step = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            raise GrammarError(f"$ref {ref!r} points to nothing in the schema")
    if not isinstance(node, (dict, bool)):
        raise GrammarError(f"$ref {ref!r} does not point to a schema")
    return node
