"""The request path for the rest of the OpenAI surface: Responses API, images, transcriptions.

`SurfaceRelay` is the gateway's `Relay` (same keys, limits, pool, upstream client, ledger and
retry rule; `_connect` and the accounting are reused as they are) with what these endpoints
need on top: a per-endpoint path, method and content type; Responses streams relayed with
their `event:` lines; each response id bound to its backend, so retrieval, cancellation and
`previous_response_id` reach the replica that holds it; and answers normalised to OpenAI's
shapes (srt/vtt rendered, verbose transcripts completed, image answers cleaned).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

from litestar.response import Response, Stream
from litestar.types import Receive

from proxy.answers import backend_failure
from proxy.bindings import Binding, ResponseBindings
from proxy.errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    GatewayError,
    NotFound,
    StreamInterrupted,
    UnsupportedMediaType,
)
from proxy.exchange import Exchange, LedgerSink, RequestSink, new_request_id
from proxy.keys.ring import KeyRing
from proxy.limits.admission import Admission, Limiter
from proxy.metrics import Metrics
from proxy.relay import (
    CLIENT_CLOSED,
    EVENT_STREAM,
    JSON,
    PRICE_HEADER,
    DisconnectWatch,
    Relay,
    _RetryableError,
)
from proxy.routing.backend import Outcome
from proxy.routing.lease import Lease
from proxy.routing.policies import RouteHint
from proxy.routing.pool import Pool
from proxy.upstream import Upstream, UpstreamResponse
from proxy.wire.decoding import RequestView
from proxy.wire.images import ImagesAnswerError, images_response
from proxy.wire.responses_stream import (
    ResponsesStreamRelay,
    drop_unset_nulls,
    public_model,
    read_response,
)
from proxy.wire.surface import SurfaceView
from proxy.wire.transcripts import TranscriptError, render


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == JSON or media.endswith("+json")


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

    async def handle(
        self,
        endpoint: str,
        decode: Callable[[], SurfaceView],
        *,
        authorization: str | None,
        content_type: str | None,
        body: bytes | bytearray,
        json_body: bool = True,
        receive: Receive | None = None,
    ) -> Response[bytes] | Stream:
        """One create request (responses, images, transcriptions), accounted like any other.

        With the ASGI `receive`, a client that leaves while the backend works (a whole image
        or transcript) cancels the upstream request at once, as on the chat routes."""
        exchange = Exchange(endpoint, clock=self._clock, monotonic=self._monotonic)
        headers: dict[str, str] = {"x-request-id": exchange.request_id}
        admission: Admission | None = None
        streaming = False
        watch: DisconnectWatch | None = None
        try:
            key = self._keys.authenticate(authorization)
            exchange.key_id = key.id
            if json_body and not _is_json(content_type):
                raise UnsupportedMediaType(
                    "Invalid Content-Type header: expected 'application/json'."
                )
            view = decode()
            exchange.model = view.model
            exchange.stream = view.stream
            entry = self._pool.resolve(view.model)
            exchange.model = entry.name
            self._check_previous(view, key.id, entry.name)
            admission = await self._limiter.admit(key, entry.name)
            headers.update(admission.headers)
            exchange.price_micro_usd, headers[PRICE_HEADER] = self._price(entry)
            exchange.queue_ms = exchange.elapsed_ms()
            upstream_body = view.upstream_body(body, entry.served_name)
            if receive is not None:
                watch = DisconnectWatch(receive)
            lease, answer = await self._connect(entry.name, view, upstream_body, exchange)
            headers["openai-processing-ms"] = str(int(exchange.elapsed_ms()))
            if view.stream and answer.status == 200:
                if watch is not None:
                    watch.stop()
                streaming = True
                names = (entry.served_name, entry.name)
                events = self._responses_stream(answer, lease, admission, exchange, names)
                return Stream(
                    events,
                    status_code=200,
                    media_type=EVENT_STREAM,
                    headers={**headers, "cache-control": "no-cache"},
                )
            names = (entry.served_name, entry.name)
            return await self._answer(answer, lease, view, exchange, headers, model_names=names)
        except GatewayError as error:
            return self._error(error, exchange, headers)
        except asyncio.CancelledError:
            if watch is None or not watch.absorb():
                raise
            exchange.cancelled = True
            exchange.status = CLIENT_CLOSED
            exchange.error_code = "client_closed"
            return Response(b"", status_code=CLIENT_CLOSED)
        finally:
            if watch is not None:
                watch.stop()
            if not streaming:
                if admission is not None:
                    admission.release()
                self._close(exchange)

    def _check_previous(self, view: SurfaceView, key_id: str | None, model: str) -> None:
        """A `previous_response_id` must name a response this key created on this model."""
        previous = view.previous_response_id
        if previous is None:
            return
        binding = self.bindings.find(previous, key_id)
        if binding is None or binding.model != model:
            raise _not_found(previous, "previous_response_id")

    async def _attempt(
        self,
        model: str,
        view: RequestView,
        body: bytes,
        exchange: Exchange,
        tried: set[str],
    ) -> tuple[Lease, UpstreamResponse]:
        assert isinstance(view, SurfaceView)
        exclude = set(tried)
        if view.previous_response_id is not None:
            exclude |= self._others(model, view.previous_response_id, exchange.key_id)
        hint = RouteHint(view.prefix, float(view.prompt_tokens_estimate))
        lease = self._pool.route(model, hint, frozenset(exclude))
        backend = lease.backend
        if tried:
            exchange.retries += 1
        tried.add(backend.id)
        exchange.backend = backend.id
        answer = await self._send(
            lease, view.path, body, exchange.request_id, content_type=view.content_type
        )
        if answer.status == 200:
            return lease, answer
        raise await self._failure(answer, lease, view.path, model)

    def _others(self, model: str, response_id: str, key_id: str | None) -> set[str]:
        """Every backend of the model but the one holding `response_id`."""
        binding = self.bindings.find(response_id, key_id)
        members = self._pool.snapshot.members.get(model, ())
        return {
            m.backend.id for m in members if binding is None or m.backend.id != binding.backend_id
        }

    async def _send(
        self,
        lease: Lease,
        path: str,
        body: bytes,
        request_id: str,
        *,
        method: str = "POST",
        content_type: str | None = JSON,
    ) -> UpstreamResponse:
        backend = lease.backend
        try:
            return await self._upstream.post(
                backend.url + path,
                body,
                api_key=backend.api_key,
                request_id=request_id,
                method=method,
                content_type=content_type,
            )
        except BackendUnreachable as error:
            lease.finish(Outcome.CONNECT_FAILED)
            raise _RetryableError(error) from None
        except BackendTimeout:
            lease.finish(Outcome.TIMEOUT_BEFORE_FIRST_BYTE)
            raise
        except BackendError:
            lease.finish(Outcome.SERVER_ERROR)
            raise
        except asyncio.CancelledError:
            lease.finish(Outcome.CANCELLED)
            raise

    async def _failure(
        self, answer: UpstreamResponse, lease: Lease, path: str, model: str
    ) -> Exception:
        """The error for a backend's non-200 answer; the lease is finished here."""
        try:
            payload = await answer.read()
        except GatewayError:
            payload = b""
        if answer.status == 404:
            lease.finish(Outcome.OK)  # a healthy backend that lacks the route or the id
            if b'"detail"' in payload:  # FastAPI's "Not Found": the backend lacks the route
                return NotFound(
                    f"The model '{model}' does not support {path} on its backends.",
                    code="unsupported_endpoint",
                )
            failure = backend_failure(400, payload)  # the message and param of its 404
            return NotFound(failure.message, param=failure.param or "response_id")
        failure = backend_failure(answer.status, payload)
        if answer.status == 503:
            lease.finish(Outcome.UNAVAILABLE)
            return _RetryableError(failure)
        server_side = answer.status >= 500 or answer.status in (401, 403)
        lease.finish(Outcome.SERVER_ERROR if server_side else Outcome.OK)
        return failure

    async def _answer(
        self,
        answer: UpstreamResponse,
        lease: Lease,
        view: SurfaceView,
        exchange: Exchange,
        headers: dict[str, str],
        *,
        model_names: tuple[str, str],
    ) -> Response[bytes]:
        """A whole answer, in the shape and format the client asked for."""
        try:
            payload = await answer.read()
        except (StreamInterrupted, BackendTimeout):
            lease.finish(Outcome.STREAM_CUT)
            raise
        except asyncio.CancelledError:
            lease.finish(Outcome.CANCELLED)
            raise
        lease.finish(Outcome.OK)
        media_type = JSON
        try:
            if view.endpoint == "responses":
                payload = public_model(drop_unset_nulls(payload), model_names)
                self._bind(read_response(payload).id, exchange, lease)
                usage = read_response(payload).usage
                if usage is not None:
                    exchange.prompt_tokens = usage.input_tokens
                    exchange.completion_tokens = usage.output_tokens
            elif view.endpoint == "images.generations":
                payload = images_response(payload, view.response_format or "url")
            else:
                payload, media_type = render(
                    view.response_format or "json",
                    payload,
                    language=view.language,
                    temperature=view.temperature,
                )
        except (ImagesAnswerError, TranscriptError):
            raise BackendError("The model backend's answer could not be read.") from None
        exchange.completed = True
        exchange.mark_first_byte()
        return Response(payload, status_code=200, media_type=media_type, headers=headers)

    def _bind(self, response_id: str | None, exchange: Exchange, lease: Lease) -> None:
        if response_id and exchange.model is not None:
            binding = Binding(exchange.key_id, exchange.model, lease.backend.id)
            self.bindings.bind(response_id, binding)

    async def _responses_stream(
        self,
        answer: UpstreamResponse,
        lease: Lease,
        admission: Admission,
        exchange: Exchange,
        model_names: tuple[str, str],
    ) -> AsyncIterator[bytes]:
        """A Responses stream, event for event; its `finally` settles lease, limit and ledger."""
        relay = ResponsesStreamRelay(model_names)
        outcome = Outcome.OK
        released = bound = False
        try:
            try:
                async for chunk in answer.chunks():
                    lease.progress()
                    out = relay.feed(chunk)
                    if not bound and relay.response_id is not None:
                        self._bind(relay.response_id, exchange, lease)
                        bound = True
                    if out:
                        exchange.mark_first_byte()
                        yield out
                released = True
                answer.release()
                if relay.failed:
                    outcome = Outcome.SERVER_ERROR
                elif not relay.complete:
                    outcome = Outcome.STREAM_CUT
                    yield relay.fail(StreamInterrupted("The model backend's stream broke off."))
            except (StreamInterrupted, BackendTimeout) as error:
                outcome = Outcome.STREAM_CUT
                yield relay.fail(error)
        except (asyncio.CancelledError, GeneratorExit):
            outcome = Outcome.CANCELLED
            exchange.cancelled = True
            raise
        finally:
            if not released:
                answer.abort()
            lease.finish(outcome)
            admission.release()
            exchange.delivered_tokens = relay.token_chunks
            if relay.usage is not None:
                exchange.prompt_tokens = relay.usage.prompt_tokens
                exchange.cached_tokens = relay.usage.cached_tokens
                exchange.completion_tokens = relay.usage.completion_tokens
            if relay.failed or outcome is Outcome.STREAM_CUT:
                exchange.error_code = StreamInterrupted.code
            else:
                exchange.completed = relay.complete and outcome is Outcome.OK
            self._close(exchange)

    async def stored(
        self, response_id: str, *, authorization: str | None, cancel: bool
    ) -> Response[bytes]:
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
            return Response(
                error.to_json(),
                status_code=error.status,
                media_type=JSON,
                headers={**headers, **error.headers},
            )
        return Response(payload, status_code=200, media_type=JSON, headers=headers)
