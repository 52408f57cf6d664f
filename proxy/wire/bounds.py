"""The request fields that size a backend's work, held to what the chosen model can do.

Ranges that hold for every model (`n` at most 128, `dimensions` at most
MAX_EMBEDDING_DIMENSIONS, ...) are checked by the decode itself (`msgspec.Meta` on the wire
types). What depends on the model is checked here once the model is known, and before the
request costs a backend anything: `max_tokens` (`max_completion_tokens`, `max_output_tokens`)
no larger than the model's `context_length`, and `dimensions` no larger than an embedding
model's width. Each refusal is OpenAI's 400 naming the field.
"""

from __future__ import annotations

from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.wire.chat import CreateChatCompletionRequest
from warmgate.proxy.wire.completions import CreateCompletionRequest
from warmgate.proxy.wire.embeddings import CreateEmbeddingRequest
from warmgate.proxy.wire.responses import CreateResponse
from warmgate.proxy.wire.views import RequestView


def _token_limit(view: RequestView) -> tuple[str, int] | None:
    """(field, value) of the request's completion-token limit, if it sets one."""
    request = view.request
    if isinstance(request, CreateChatCompletionRequest):
        if request.max_completion_tokens is not None:
            return "max_completion_tokens", request.max_completion_tokens
        if request.max_tokens is not None:
            return "max_tokens", request.max_tokens
    elif isinstance(request, CreateCompletionRequest):
        if request.max_tokens is not None:
            return "max_tokens", request.max_tokens
    elif isinstance(request, CreateResponse) and request.max_output_tokens is not None:
        return "max_output_tokens", request.max_output_tokens
    return None


def check_model_bounds(
    view: RequestView, *, context_length: int | None, embedding_dimensions: int | None
) -> None:
    """Raise OpenAI's 400 when the request asks the model for more than it can give."""
    if context_length is not None:
        limit = _token_limit(view)
        if limit is not None and limit[1] > context_length:
            field, value = limit
            raise InvalidRequest(
                f"{field} is too large: {value}. This model supports at most "
                f"{context_length} completion tokens, whereas you provided {value}.",
                param=field,
                code="invalid_value",
            )
    request = view.request
    if (
        embedding_dimensions is not None
        and isinstance(request, CreateEmbeddingRequest)
        and request.dimensions is not None
        and request.dimensions > embedding_dimensions
    ):
        raise InvalidRequest(
            f"Invalid 'dimensions': integer above max value. Expected a value <= "
            f"{embedding_dimensions}, but got {request.dimensions} instead.",
            param="dimensions",
            code="integer_above_max_value",
        )
