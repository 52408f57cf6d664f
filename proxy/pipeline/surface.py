"""The request path for the rest of the OpenAI surface: Responses API, images, transcriptions.

`SurfaceRelay` is the gateway's `Relay`: the same steps (keys, limits, pool, retries, upstream
client, streaming, ledger), with its hooks overridden for what these endpoints need: a
per-endpoint path, method and content type; Responses streams relayed with their `event:`
lines; each response id bound to its backend, so retrieval, cancellation and
`previous_response_id` reach the replica that holds it; and answers normalised to OpenAI's
shapes (srt/vtt rendered, verbose transcripts completed, image answers cleaned).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

from warmgate.proxy.answers.completions import backend_failure
from warmgate.proxy.answers.responses_api import (
    ResponsesStreamRelay,
    drop_unset_nulls,
    public_model,
    read_response,
)
from warmgate.proxy.answers.transcripts import TranscriptError, render
from warmgate.proxy.errors import BackendError, GatewayError, NotFound
from warmgate.proxy.keys.ring import KeyRing
from warmgate.proxy.limits.admission import Limiter
from warmgate.proxy.observability.metrics import Metrics
from warmgate.proxy.pipeline.exchange import Exchange, LedgerSink, RequestSink, new_request_id
from warmgate.proxy.pipeline.relay import Relay, _RetryableError
from warmgate.proxy.pipeline.replies import JSON as JSON_TYPE
from warmgate.proxy.pipeline.replies import JsonResponse
from warmgate.proxy.pipeline.streaming import StreamTranslator
from warmgate.proxy.routing.backend import Outcome
from warmgate.proxy.routing.bindings import Binding, ResponseBindings
from warmgate.proxy.routing.lease import Lease
from warmgate.proxy.routing.pool import Pool
from warmgate.proxy.upstream.client import Upstream, UpstreamResponse
from warmgate.proxy.wire.decoding import RequestView
from warmgate.proxy.wire.images import ImagesAnswerError, images_response
from warmgate.proxy.wire.surface import SurfaceView


def _not_found(response_id: str, param: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param=param)


class SurfaceRelay(Relay):
    def __init__(
        self,
        *,
        keys: KeyRing,
        limiter: Limiter,
        pool: Pool,
        upstream: Upstream,
        ledger: LedgerSink,
        log: RequestSink,
        metrics: Metrics,
        bindings: ResponseBindings,
        max_attempts: int = 3,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            keys=keys,
            limiter=limiter,
            pool=pool,
            upstream=upstream,
            ledger=ledger,
            log=log,
            metrics=metrics,
            max_attempts=max_attempts,
            clock=clock,
            monotonic=monotonic,
        )
        self.bindings = bindings

    # `Relay.handle` serves the create requests (responses, images, transcriptions) with
    # these hooks.

    def _check(self, view: RequestView, key_id: str | None, model: str) -> None:
        """A `previous_response_id` must name a response this key created on this model."""
        assert isinstance(view, SurfaceView)
        previous = view.previous_response_id
        if previous is None:
            return
        binding = self.bindings.find(previous, key_id)
        if binding is None or binding.model != model:
            raise _not_found(previous, "previous_response_id")

    def _target(self, view: RequestView) -> tuple[str, str | None]:
        assert isinstance(view, SurfaceView)
        return view.path, view.content_type

    def _exclude(
        self, model: str, view: RequestView, exchange: Exchange, tried: set[str]
    ) -> frozenset[str]:
        """A follow-up (`previous_response_id`) goes only to the backend holding its parent."""
        assert isinstance(view, SurfaceView)
        if view.previous_response_id is None:
            return frozenset(tried)
        return frozenset(tried | self._others(model, view.previous_response_id, exchange.key_id))

    def _translator(
        self, view: RequestView, exchange: Exchange, lease: Lease, names: tuple[str, str]
    ) -> StreamTranslator:
        def bind(response_id: str) -> None:
            self._bind(response_id, exchange, lease)

        return ResponsesStreamRelay(names, on_response_id=bind)

    def _shape(
        self,
        payload: bytes,
        view: RequestView,
        exchange: Exchange,
        lease: Lease,
        names: tuple[str, str],
    ) -> tuple[bytes, bytes]:
        """A whole answer, in the shape and format the client asked for."""
        assert isinstance(view, SurfaceView)
        media_type = JSON_TYPE
        try:
            if view.endpoint == "responses":
                payload = public_model(drop_unset_nulls(payload), names)
                response = read_response(payload)
                self._bind(response.id, exchange, lease)
                if response.usage is not None:
                    exchange.prompt_tokens = response.usage.input_tokens
                    exchange.completion_tokens = response.usage.output_tokens
            elif view.endpoint == "images.generations":
                payload = images_response(payload, view.response_format or "url")
            else:
                payload, text_type = render(
                    view.response_format or "json",
                    payload,
                    language=view.language,
                    temperature=view.temperature,
                )
                media_type = text_type.encode("latin-1")
        except (ImagesAnswerError, TranscriptError):
            raise BackendError("The model backend's answer could not be read.") from None
        return payload, media_type

    async def _failure(
        self, answer: UpstreamResponse, lease: Lease, path: str, model: str
    ) -> Exception:
        """A 404 from a healthy backend: it lacks the route, or the response id."""
        if answer.status != 404:
            return await super()._failure(answer, lease, path, model)
        try:
            payload = await answer.read()
        except GatewayError:
            payload = b""
        lease.finish(Outcome.OK)
        if b'"detail"' in payload:  # FastAPI's "Not Found": the backend lacks the route
            return NotFound(
                f"The model '{model}' does not support {path} on its backends.",
                code="unsupported_endpoint",
            )
        failure = backend_failure(400, payload)  # the message and param of its 404
        return NotFound(failure.message, param=failure.param or "response_id")

    def _others(self, model: str, response_id: str, key_id: str | None) -> set[str]:
        """Every backend of the model but the one holding `response_id`."""
        binding = self.bindings.find(response_id, key_id)
        members = self._pool.snapshot.members.get(model, ())
        return {
            m.backend.id for m in members if binding is None or m.backend.id != binding.backend_id
        }

    def _bind(self, response_id: str | None, exchange: Exchange, lease: Lease) -> None:
        if response_id and exchange.model is not None:
            binding = Binding(exchange.key_id, exchange.model, lease.backend.id)
            self.bindings.bind(response_id, binding)

    async def stored(
        self, response_id: str, *, authorization: str | None, cancel: bool
    ) -> JsonResponse:
        """GET /v1/responses/{id} or POST .../cancel on the backend that holds the response.

        Not a generation: neither limited nor accounted in the ledger.
        """
        headers = {"x-request-id": new_request_id("responses")}
        try:
            key = self._keys.authenticate(authorization)
            binding = self.bindings.find(response_id, key.id)
            if binding is None:
                raise _not_found(response_id, "response_id")
            others = self._others(binding.model, response_id, key.id)
            lease = self._pool.route(binding.model, exclude=frozenset(others))
            path = f"/v1/responses/{quote(response_id, safe='')}" + ("/cancel" if cancel else "")
            try:
                answer = await self._send(
                    lease,
                    path,
                    b"",
                    headers["x-request-id"],
                    method="POST" if cancel else "GET",
                    content_type=None,
                )
            except _RetryableError as failure:
                raise failure.error from None
            if answer.status != 200:
                problem = await self._failure(answer, lease, path, binding.model)
                raise problem.error if isinstance(problem, _RetryableError) else problem
            payload = drop_unset_nulls(await answer.read())
            lease.finish(Outcome.OK)
            served = self._pool.resolve(binding.model).served_name
            payload = public_model(payload, (served, binding.model))
        except GatewayError as error:
            headers.update(error.headers)
            return JsonResponse(error.to_json(), status=error.status, headers=headers.items())
        return JsonResponse(payload, status=200, headers=headers.items())
