"""UsageInfo as SGLang's usage_processor builds it, in its field order."""

from __future__ import annotations

from backends.sim.generation import Generation


def usage(generation: Generation, reasoning_tokens: int, cache_report: bool) -> dict[str, object]:
    prompt, completion = generation.prompt_tokens, generation.generated
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": generation.cached_tokens}
        if cache_report
        else None,
        "reasoning_tokens": reasoning_tokens,
        "completion_tokens_details": (
            {"reasoning_tokens": reasoning_tokens} if reasoning_tokens else None
        ),
    }


def without_nulls(fields: dict[str, object]) -> dict[str, object]:
    """`model_dump_json(exclude_none=True)`, as the completions usage chunk is dumped."""
    return {key: value for key, value in fields.items() if value is not None}
