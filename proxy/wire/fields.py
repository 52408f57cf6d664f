"""Field types the OpenAI request schemas share: ranges, stop sequences, stream options.

Each alias carries its constraints as `msgspec.Meta`, so one decode checks types and ranges
together. Names follow the spec (`StopConfiguration`, `ChatCompletionStreamOptions`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Tool, function and json_schema names: prose-only rule in the spec, enforced here.
NAME_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"

Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
TopP = Annotated[float, msgspec.Meta(ge=0, le=1)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
ChoiceCount = Annotated[int, msgspec.Meta(ge=1, le=128)]
TopLogprobs = Annotated[int, msgspec.Meta(ge=0, le=20)]
TokenLimit = Annotated[int, msgspec.Meta(ge=1)]
Seed = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
ToolName = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
StopSequences = Annotated[list[str], msgspec.Meta(min_length=1, max_length=4)]
# StopConfiguration: a string or 1..4 strings.
StopConfiguration = str | StopSequences
# logit_bias: token id (as a string key) -> bias in -100..100.
LogitBias = dict[
    Annotated[str, msgspec.Meta(pattern=r"^\d+$")], Annotated[int, msgspec.Meta(ge=-100, le=100)]
]
# Metadata: at most 16 pairs, keys up to 64 and values up to 512 characters.
Metadata = Annotated[
    dict[
        Annotated[str, msgspec.Meta(max_length=64)],
        Annotated[str, msgspec.Meta(max_length=512)],
    ],
    msgspec.Meta(max_length=16),
]
ServiceTier = Literal["auto", "default", "flex", "scale", "priority", "fast"]


class ChatCompletionStreamOptions(msgspec.Struct):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class FreeFormObject(msgspec.Struct):
    """Any JSON object, checked to be an object and otherwise skipped (never built as a dict).

    Used for JSON schemas (`FunctionParameters`, `ResponseFormatJsonSchemaSchema`) and other
    open objects the gateway only forwards.
    """
