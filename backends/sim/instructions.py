"""What an instruction-following model takes from its prompt: a JSON schema it was told to
answer with, and whether it was told to put the JSON in a markdown ```json block.

Clients that ask for structured output without a grammar rely on this: instructor's JSON and
MD_JSON modes put the pydantic schema in the system message, LangChain's json_mode relies on
format instructions in the prompt. The check is a substring test, so prompts without a schema
(almost all) pay nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

SCHEMA_HINT = '"properties"'
FENCE = "```json"
_decoder = json.JSONDecoder()


def prompt_schema(texts: Iterable[str]) -> dict[str, Any] | None:
    """The last JSON schema (an object with `properties`) the prompt writes out: instructions
    that show an example schema first give the one to follow last."""
    found = None
    for text in texts:
        if SCHEMA_HINT not in text:
            continue
        start = text.find("{")
        while start >= 0:
            try:
                value, end = _decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                start = text.find("{", start + 1)
                continue
            if isinstance(value, dict) and isinstance(value.get("properties"), dict):
                found = value
                start = text.find("{", end)  # past this schema: its own parts are not others
            else:
                start = text.find("{", start + 1)
    return found


def wants_fence(texts: Iterable[str]) -> bool:
    return any(FENCE in text for text in texts)


def fenced(json_text: str) -> str:
    return f"{FENCE}\n{json_text}\n```"
