"""Body validation failures worded as SGLang words them: FastAPI's RequestValidationError text
(`"1 validation error:\\n  {...} [{...}]"`) built from msgspec's error, status 400 (never 422).

msgspec stops at the first error, so the message names one error where pydantic may list more.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from warmgate.backends.sim.errors import SimError

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")
_KINDS = {
    "array": ("list_type", "Input should be a valid list"),
    "object": ("dict_type", "Input should be a valid dictionary"),
    "str": ("string_type", "Input should be a valid string"),
    "int": ("int_type", "Input should be a valid integer"),
    "float": ("float_type", "Input should be a valid number"),
    "bool": ("bool_type", "Input should be a valid boolean"),
}


def body_error(body: bytes, exc: msgspec.DecodeError) -> SimError:
    """The 400 SGLang answers for a body its pydantic model refuses (a ValidationError) or
    that is not JSON (any other DecodeError)."""
    if isinstance(exc, msgspec.ValidationError):
        return _as_sim_error(_pydantic_error(body, str(exc)))
    error: dict[str, Any] = {
        "type": "json_invalid",
        "loc": ("body", 0),
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": "Expecting value"},
    }
    return _as_sim_error(error)


def field_error(field: str, kind: str, message: str, value: object) -> SimError:
    """A refused field value, e.g. a tool_choice string outside its literals."""
    return _as_sim_error({"type": kind, "loc": ("body", field), "msg": message, "input": value})


def _as_sim_error(error: dict[str, Any]) -> SimError:
    return SimError(f"1 validation error:\n  {error} {[error]}", 400, "Bad Request")


def _pydantic_error(body: bytes, message: str) -> dict[str, Any]:
    match = _AT.match(message)
    what = match.group("what") if match else message
    path: list[str | int] = []
    for name, index in _STEP.findall(match.group("path") or "" if match else ""):
        path.append(int(index) if index else name)
    document = _decode(body)
    missing = _MISSING.match(what)
    if missing:
        parent = _walk(document, path)
        return {
            "type": "missing",
            "loc": ("body", *path, missing.group("field")),
            "msg": "Field required",
            "input": parent,
        }
    expected = _EXPECTED.match(what)
    want = expected.group("want").split(" | ")[0] if expected else ""
    kind, text = _KINDS.get(want, ("value_error", what))
    return {"type": kind, "loc": ("body", *path), "msg": text, "input": _walk(document, path)}


def _decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def _walk(document: Any, path: list[str | int]) -> Any:
    for step in path:
        if isinstance(step, int) and isinstance(document, list) and step < len(document):
            document = document[step]
        elif isinstance(step, str) and isinstance(document, dict):
            document = document.get(step)
        else:
            return None
    return document
