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
    """The first JSON schema (an object with `properties`) written in any of `texts`."""
    for text in texts:
        if SCHEMA_HINT not in text:
            continue
        start = text.find("{")
        while start >= 0:
            try:
                value, _ = _decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                value = None
            if isinstance(value, dict) and isinstance(value.get("properties"), dict):
                return value
            start = text.find("{", start + 1)
    return None


def wants_fence(texts: Iterable[str]) -> bool:
    return any(FENCE in text for text in texts)


def fenced(json_text: str) -> str:
    return f"{FENCE}\n{json_text}\n```"
