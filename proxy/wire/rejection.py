"""msgspec's decode errors as OpenAI's 400 `invalid_request_error`, `param` naming the field.

msgspec reports the failing path as `$.messages[1].role`; OpenAI's `param` reads
`messages[1].role`. A missing field is reported at its parent, so its name is appended.
The message follows OpenAI's wording closely enough for a person to act on it.
"""

from __future__ import annotations

import re

import msgspec

from warmgate.proxy.errors import InvalidRequest

_AT_PATH = re.compile(r"^(?P<detail>.*?)(?: - at (?:`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_WRONG_TYPE = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_BOUND = re.compile(r"^Expected `(?P<kind>[^`]+)` (?P<op>[<>]=?) (?P<limit>\S+)$")
_LENGTH = re.compile(r"^Expected `(?P<kind>[^`]+)` of length (?P<op>[<>]=?) (?P<limit>\d+)$")

MALFORMED_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The API expects a JSON payload, but what was sent was "
    "not valid JSON.)"
)


NESTED_TOO_DEEPLY = (
    "We could not parse the JSON body of your request: its arrays and objects are nested too "
    "deeply."
)
# How much of a client's Content-Type an error message repeats.
_SHOWN_CONTENT_TYPE_CHARS = 100


def too_deep() -> InvalidRequest:
    """The 400 for a body nested deeper than the decoder's recursion guard allows (about a
    thousand levels): msgspec raises RecursionError there, never a crash."""
    return InvalidRequest(NESTED_TOO_DEEPLY, code="invalid_json")


def wrong_content_type(content_type: str | None, expected: str) -> InvalidRequest:
    """OpenAI's 400 for a body of another media type (a form-encoded body where JSON is
    expected): refused from the header alone, before the body is read."""
    shown = (content_type or "none")[:_SHOWN_CONTENT_TYPE_CHARS]
    return InvalidRequest(f"Invalid Content-Type header ({shown}), expected {expected}.")


def param_of(path: str) -> str | None:
    """OpenAI's param for a msgspec path (without the leading `$`): `.a[1].b` → `a[1].b`."""
    param = path.removeprefix(".").replace("[...]", "")
    return param or None


def _join(parent: str | None, field: str) -> str:
    return f"{parent}.{field}" if parent else field


def _bound_code(kind: str, op: str) -> str:
    number = "integer" if kind == "int" else "decimal"
    side = "above_max_value" if op.startswith("<") else "below_min_value"
    return f"{number}_{side}"


def rejection(exc: msgspec.DecodeError) -> InvalidRequest:
    """The InvalidRequest for a msgspec DecodeError (ValidationError is its subclass)."""
    if not isinstance(exc, msgspec.ValidationError):
        return InvalidRequest(MALFORMED_JSON)
    match = _AT_PATH.match(str(exc))
    assert match is not None  # the pattern matches any string
    detail = match["detail"]
    param = param_of(match["path"] or "")
    if missing := _MISSING.match(detail):
        name = _join(param, missing["field"])
        return InvalidRequest(
            f"Missing required parameter: '{name}'.",
            param=name,
            code="missing_required_parameter",
        )
    where = f"'{param}'" if param else "request body"
    if wrong := _WRONG_TYPE.match(detail):
        expected = wrong["expected"].replace(" | null", "")
        return InvalidRequest(
            f"Invalid type for {where}: expected {expected}, but got {wrong['got']} instead.",
            param=param,
            code="invalid_type",
        )
    if bound := _BOUND.match(detail):
        op, limit = bound["op"], bound["limit"]
        code = _bound_code(bound["kind"], op)
        return InvalidRequest(
            f"Invalid {where}: {code.replace('_', ' ')}. Expected a value {op} {limit}.",
            param=param,
            code=code,
        )
    if length := _LENGTH.match(detail):
        side = "above_max_length" if length["op"].startswith("<") else "below_min_length"
        return InvalidRequest(
            f"Invalid {where}: expected {length['kind']} of length {length['op']} "
            f"{length['limit']}.",
            param=param,
            code=f"array_{side}" if length["kind"] == "array" else f"string_{side}",
        )
    # enum and tag mismatches ("Invalid value 'bot'"), regex mismatches and the rest
    return InvalidRequest(f"Invalid {where}: {detail}.", param=param, code="invalid_value")
