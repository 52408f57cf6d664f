"""The endpoint table: every OpenAI route the gateway relays to a backend, one entry each.

An entry says how a request is read (path, method, body kind, decoder, request schema), where
it goes (upstream path, method, whether the client's content type travels with it, how the
body is prepared), how its answer comes back (shaper, stream translator), how it is named and
billed (request id prefix, billable). The hot lane, the Litestar routes, the relay and the
OpenAPI document are all derived from this table: adding an endpoint is one entry here plus
its wire types and, if its answer needs one, a shaper.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from warmgate.proxy.answers.shaping import (
    Shape,
    Translate,
    shape_completion,
    shape_embeddings,
    shape_images,
    shape_response,
    shape_transcription,
    translate_completion,
    translate_response,
)
from warmgate.proxy.ids import REQUEST_PREFIX
from warmgate.proxy.wire.chat import CreateChatCompletionRequest
from warmgate.proxy.wire.completions import CreateCompletionRequest
from warmgate.proxy.wire.decoding import (
    decode_chat_completion,
    decode_completion,
    decode_embedding,
    decode_images,
    decode_responses,
    decode_stored_response,
    decode_transcriptions,
)
from warmgate.proxy.wire.embeddings import CreateEmbeddingRequest
from warmgate.proxy.wire.images import CreateImageRequest
from warmgate.proxy.wire.responses import CreateResponse
from warmgate.proxy.wire.views import (
    DecodeOptions,
    RawRequest,
    RequestView,
    form_upstream_body,
    images_upstream_body,
    json_upstream_body,
    no_upstream_body,
)


class Body(enum.Enum):
    """What a request carries, which decides how it is read and what it must declare."""

    JSON = "json"  # `Content-Type: application/json`, at most [server] max_body_bytes
    FORM = "form"  # multipart/form-data, at most [server] max_audio_bytes plus the form
    NONE = "none"  # nothing is read


class Backend404(enum.Enum):
    """What a backend's 404 means on this endpoint."""

    # The backend does not serve the model it was sent: our misconfiguration, a 502.
    MISCONFIGURED = "misconfigured"
    # The client's 404: the backend lacks this API (its framework's own "Not Found"), or does
    # not know the stored response the request names.
    PASSED_ON = "passed_on"


Decode = Callable[[RawRequest, DecodeOptions], RequestView]
Prepare = Callable[[RequestView, bytes | bytearray, str], bytes | bytearray]


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    name: str  # the ledger's and the log's name for it: "chat.completions"
    method: str
    path: str  # Litestar's path syntax: "/v1/responses/{response_id:str}"
    summary: str  # for the API reference
    body: Body
    decode: Decode
    # The Struct that validates the body, and OpenAI's schema name of the answer (reference).
    request_schema: type[msgspec.Struct] | None
    response_schema: str
    upstream_method: str
    # `{response_id}` is filled in, percent-encoded, from the view's response_ref.
    upstream_path: str
    prepare: Prepare
    shape: Shape
    translate: Translate | None = None  # None: the endpoint never streams
    id_prefix: str = REQUEST_PREFIX
    # Retrieving or cancelling a stored response is accounted, never billed.
    billable: bool = True
    backend_404: Backend404 = Backend404.MISCONFIGURED

    @property
    def has_path_params(self) -> bool:
        return "{" in self.path


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        name="chat.completions",
        method="POST",
        path="/v1/chat/completions",
        summary="Create a chat completion",
        body=Body.JSON,
        decode=lambda raw, options: decode_chat_completion(
            raw.body, prefix_chars=options.prefix_chars
        ),
        request_schema=CreateChatCompletionRequest,
        response_schema="CreateChatCompletionResponse",
        upstream_method="POST",
        upstream_path="/v1/chat/completions",
        prepare=json_upstream_body,
        shape=shape_completion,
        translate=translate_completion,
        id_prefix="chatcmpl-",
    ),
    Endpoint(
        name="completions",
        method="POST",
        path="/v1/completions",
        summary="Create a completion (legacy)",
        body=Body.JSON,
        decode=lambda raw, options: decode_completion(raw.body, prefix_chars=options.prefix_chars),
        request_schema=CreateCompletionRequest,
        response_schema="CreateCompletionResponse",
        upstream_method="POST",
        upstream_path="/v1/completions",
        prepare=json_upstream_body,
        shape=shape_completion,
        translate=translate_completion,
        id_prefix="cmpl-",
    ),
    Endpoint(
        name="embeddings",
        method="POST",
        path="/v1/embeddings",
        summary="Create embeddings",
        body=Body.JSON,
        decode=lambda raw, options: decode_embedding(raw.body, prefix_chars=options.prefix_chars),
        request_schema=CreateEmbeddingRequest,
        response_schema="CreateEmbeddingResponse",
        upstream_method="POST",
        upstream_path="/v1/embeddings",
        prepare=json_upstream_body,
        shape=shape_embeddings,
    ),
    Endpoint(
        name="responses",
        method="POST",
        path="/v1/responses",
        summary="Create a model response (Responses API)",
        body=Body.JSON,
        decode=lambda raw, options: decode_responses(raw.body, prefix_chars=options.prefix_chars),
        request_schema=CreateResponse,
        response_schema="Response",
        upstream_method="POST",
        upstream_path="/v1/responses",
        prepare=json_upstream_body,
        shape=shape_response,
        translate=translate_response,
        backend_404=Backend404.PASSED_ON,
    ),
    Endpoint(
        name="responses.retrieve",
        method="GET",
        path="/v1/responses/{response_id:str}",
        summary="Retrieve a stored model response",
        body=Body.NONE,
        decode=lambda raw, options: decode_stored_response("responses.retrieve", raw.path_params),
        request_schema=None,
        response_schema="Response",
        upstream_method="GET",
        upstream_path="/v1/responses/{response_id}",
        prepare=no_upstream_body,
        shape=shape_response,
        billable=False,
        backend_404=Backend404.PASSED_ON,
    ),
    Endpoint(
        name="responses.cancel",
        method="POST",
        path="/v1/responses/{response_id:str}/cancel",
        summary="Cancel a background model response",
        body=Body.NONE,
        decode=lambda raw, options: decode_stored_response("responses.cancel", raw.path_params),
        request_schema=None,
        response_schema="Response",
        upstream_method="POST",
        upstream_path="/v1/responses/{response_id}/cancel",
        prepare=no_upstream_body,
        shape=shape_response,
        billable=False,
        backend_404=Backend404.PASSED_ON,
    ),
    Endpoint(
        name="images.generations",
        method="POST",
        path="/v1/images/generations",
        summary="Create images",
        body=Body.JSON,
        decode=lambda raw, options: decode_images(raw.body, prefix_chars=options.prefix_chars),
        request_schema=CreateImageRequest,
        response_schema="ImagesResponse",
        upstream_method="POST",
        upstream_path="/v1/images/generations",
        prepare=images_upstream_body,
        shape=shape_images,
        backend_404=Backend404.PASSED_ON,
    ),
    Endpoint(
        name="audio.transcriptions",
        method="POST",
        path="/v1/audio/transcriptions",
        summary="Transcribe audio",
        body=Body.FORM,
        decode=lambda raw, options: decode_transcriptions(
            raw.body, raw.content_type, max_file_bytes=options.max_file_bytes
        ),
        request_schema=None,  # a multipart form: the reference documents its fields
        response_schema="CreateTranscriptionResponseJson",
        upstream_method="POST",
        upstream_path="/v1/audio/transcriptions",
        prepare=form_upstream_body,
        shape=shape_transcription,
        backend_404=Backend404.PASSED_ON,
    ),
)

BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}
