"""What the gateway keeps of a validated request, and the bytes it sends upstream.

A decoder (`proxy.wire.decoding`) turns a request's bytes into a `RequestView`: the model, how
the answer comes back (stream, usage, n), text for cache-aware routing, a size estimate, and
the decoded request itself. The original bytes go upstream; the functions here splice in only
what must change (the served model name, the usage flag, the image format), never
re-encoding a body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

import msgspec

from warmgate.proxy.wire.audio import MAX_AUDIO_BYTES, CreateTranscriptionRequest
from warmgate.proxy.wire.chat import CreateChatCompletionRequest
from warmgate.proxy.wire.completions import CreateCompletionRequest
from warmgate.proxy.wire.embeddings import CreateEmbeddingRequest
from warmgate.proxy.wire.images import CreateImageRequest
from warmgate.proxy.wire.responses import CreateResponse
from warmgate.proxy.wire.rewriter import INCLUDE_USAGE, insert_member, rewrite_request

# How much prompt text the router sees: enough to tell shared system prompts and
# conversations apart, small enough to keep routing state bounded.
PREFIX_CHARS = 4096

# Streams whose usage arrives only when `stream_options.include_usage` asks for it.
USAGE_STREAMS = frozenset({"chat.completions", "completions"})
WireRequest = (
    CreateChatCompletionRequest
    | CreateCompletionRequest
    | CreateEmbeddingRequest
    | CreateResponse
    | CreateImageRequest
    | CreateTranscriptionRequest
    | msgspec.Struct  # a passthrough endpoint's own request type
    | None  # a request with no body: retrieve or cancel a stored response
)
# Stored responses are named by ids that begin so (`resp_...`), at OpenAI as at SGLang.
RESPONSE_ID_PREFIX = "resp"
# Images are always asked for as base64: a backend's own URLs are internal addresses.
IMAGE_UPSTREAM_FORMAT = "b64_json"


class RawRequest(Protocol):
    """A request as the HTTP entry read it: what a decoder may look at."""

    @property
    def body(self) -> bytes | bytearray: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def path_params(self) -> Mapping[str, str]: ...


class DecodeOptions(msgspec.Struct, frozen=True):
    """Limits a decoder applies that come from the settings."""

    # How much prompt text the view keeps for cache-aware routing (RequestView.prefix).
    prefix_chars: int = PREFIX_CHARS
    max_file_bytes: int = MAX_AUDIO_BYTES


class RequestView(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway needs from a validated request; `request` holds the decoded whole."""

    endpoint: str  # the endpoint table's name for it: "chat.completions"
    model: str
    stream: bool
    # The client asked for the final usage chunk (stream_options.include_usage: true).
    include_usage: bool
    n: int
    # Prompt text (messages' text joined by spaces), at most PREFIX_CHARS, for routing.
    prefix: str
    prompt_tokens_estimate: int
    # Embeddings only: the encoding the client asked for ("float" when it did not say).
    encoding_format: Literal["float", "base64"] | None
    request: WireRequest
    # The body has no `stream_options` member at all (so one can be added without a scan).
    stream_options_absent: bool = False
    # A stored response this request refers to (`previous_response_id`, or the id in a
    # retrieve or cancel path) and the field that named it: only the key that created it may
    # use it, and only the backend that holds it can answer.
    response_ref: str | None = None
    response_ref_param: str = "previous_response_id"

    def upstream_body(self, body: bytes | bytearray, served_model: str) -> bytes:
        """The bytes to send upstream: `body` itself unless the model name or usage must change.

        Streams always ask the backend for usage so every stream can be accounted; the relay
        drops the usage chunk again when `include_usage` is False.
        """
        if isinstance(body, bytearray):  # only the multipart routes buffer into their own
            body = bytes(body)
        model = served_model if served_model != self.model else None
        force_usage = self.stream and not self.include_usage and self.endpoint in USAGE_STREAMS
        if model is None and not force_usage:
            return body
        if model is None and self.stream_options_absent:
            return insert_member(body, b'"stream_options":' + INCLUDE_USAGE)
        return rewrite_request(body, model=model, include_usage=force_usage)


def json_upstream_body(view: RequestView, body: bytes | bytearray, served_model: str) -> bytes:
    """A JSON request as the backend gets it: the model name and usage flag spliced if needed."""
    return view.upstream_body(body, served_model)


def images_upstream_body(view: RequestView, body: bytes | bytearray, served_model: str) -> bytes:
    """An images request as the backend gets it: always asking for base64."""
    if isinstance(body, bytearray):
        body = bytes(body)
    request = view.request
    fields: dict[str, object] = {}
    if isinstance(request, CreateImageRequest) and request.response_format != "b64_json":
        fields["response_format"] = IMAGE_UPSTREAM_FORMAT
    model = served_model if served_model != view.model else None
    if model is None and not fields:
        return body
    return rewrite_request(body, model=model, fields=fields)


def form_upstream_body(
    view: RequestView, body: bytes | bytearray, served_model: str
) -> bytes | bytearray:
    """A multipart form as the backend gets it: the same buffer, model and format spliced."""
    request = view.request
    if not isinstance(request, CreateTranscriptionRequest):
        raise TypeError(f"{view.endpoint} has no form")
    return request.upstream_body(body, served_model)


def no_upstream_body(view: RequestView, body: bytes | bytearray, served_model: str) -> bytes:
    """Retrieve and cancel send no body."""
    return b""
