"""`CreateCompletionRequest` (legacy completions) as a msgspec Struct."""

from __future__ import annotations

from typing import Annotated

import msgspec

from warmgate.proxy.wire.fields import (
    ChatCompletionStreamOptions,
    ChoiceCount,
    LogitBias,
    Penalty,
    Seed,
    StopConfiguration,
    Temperature,
    TopP,
)

TokenIds = Annotated[list[int], msgspec.Meta(min_length=1)]
# The spec's four prompt forms (string, strings, token ids, lists of token ids) share one array
# type here because a msgspec union holds one array type; `prompt_form` checks the elements
# are all of one kind.
Prompt = str | list[str | int | TokenIds]


class CreateCompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    prompt: Prompt | None
    best_of: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    echo: bool | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    logprobs: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    # The spec allows 0 here (echo with max_tokens 0 scores a prompt without generating).
    max_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None
    n: ChoiceCount | None = None
    seed: Seed | None = None
    stop: StopConfiguration | None = None
    stream: bool | None = None
    stream_options: ChatCompletionStreamOptions | msgspec.UnsetType | None = msgspec.UNSET
    suffix: str | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    user: str | None = None


def prompt_form(items: list[str | int | list[int]]) -> type | None:
    """The one element type of a prompt or input array (str, int or list), None when mixed."""
    if not items:
        return str
    first = type(items[0])
    for item in items:
        if type(item) is not first:
            return None
    return first
