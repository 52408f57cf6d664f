"""The request path: validate → authenticate → limit → route → forward → account.

`Relay.forward` takes a request's raw parts and returns the answer as a bare ASGI app
(`proxy.responses`). It decodes the body once (`proxy.wire`), forwards the original bytes
(only the model name and the usage flag may be rewritten), streams the answer back chunk by
chunk (`proxy.streaming`) and, in a `finally`, closes the request's `Exchange` exactly once:
one ledger row and one log line per request id. `Relay.handle` is those steps for any
endpoint; `proxy.surface.SurfaceRelay` serves the rest of the surface through it by
overriding the hooks (`_check`, `_target`, `_exclude`, `_translator`, `_shape`, `_failure`).

Retries happen only before any byte reached the client and only where the backend cannot have
started the work (connection refused, 503), each time on another backend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from functools import partial

from litestar.types import Receive
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from warmgate.proxy.answers.completions import backend_failure, normalize_body, read_head
from warmgate.proxy.answers.sse import SseRelay
from warmgate.proxy.errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    GatewayError,
    NoHealthyBackend,
    StreamInterrupted,
    UnsupportedMediaType,
)
from warmgate.proxy.keys.ring import KeyRing
from warmgate.proxy.ledger.row import format_usd, to_micro_usd
from warmgate.proxy.limits.admission import Admission, Limiter
from warmgate.proxy.observability.metrics import Metrics
from warmgate.proxy.pipeline.exchange import Exchange, LedgerSink, RequestSink
from warmgate.proxy.pipeline.replies import JSON as JSON_TYPE
from warmgate.proxy.pipeline.replies import Answer, DisconnectWatch, EventStream, JsonResponse
from warmgate.proxy.pipeline.streaming import StreamTranslator, relay_stream
from warmgate.proxy.routing.backend import Outcome
from warmgate.proxy.routing.catalog import ModelEntry
from warmgate.proxy.routing.lease import Lease
from warmgate.proxy.routing.policies import RouteHint
from warmgate.proxy.routing.pool import Pool
from warmgate.proxy.upstream.client import Upstream, UpstreamResponse
from warmgate.proxy.wire.decoding import (
    PREFIX_CHARS,
    RequestView,
    decode_chat_completion,
    decode_completion,
    decode_embedding,
)
from warmgate.proxy.wire.embeddings import encode_embeddings_base64

__all__ = ["CLIENT_CLOSED", "EVENT_STREAM", "JSON", "PRICE_HEADER", "DisconnectWatch", "Relay"]

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
PATHS = {
    "chat.completions": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}
DECODERS: dict[str, Callable[..., RequestView]] = {
    "chat.completions": decode_chat_completion,
    "completions": decode_completion,
    "embeddings": decode_embedding,
}
PRICE_HEADER = "x-warmgate-price-usd"
# The status a request that the client abandoned is accounted with (nothing is sent).
CLIENT_CLOSED = 499


class _RetryableError(Exception):
    """A failure where the backend cannot have started the work: try another backend."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or media.endswith("+json")


class Relay:
    """The chat, completions and embeddings routes; `proxy.surface.SurfaceRelay` serves the
    rest of the surface through the same steps, overriding the hooks marked as such."""

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
        max_attempts: int = 3,
        prefix_chars: int = PREFIX_CHARS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        # How much prompt text the decoders keep for cache-aware routing (RouteHint.prefix).
        self._prefix_chars = prefix_chars
        self._limiter = limiter
        self._pool = pool
        self._prices: dict[str, tuple[int, str]] = {}
        self._upstream = upstream
        self._ledger = ledger
        self._log = log
        self._metrics = metrics
        self._max_attempts = max(1, max_attempts)
        self._clock = clock
        self._monotonic = monotonic

    async def forward(
        self,
        endpoint: str,
        *,
        authorization: str | None,
        content_type: str | None,
        body: bytes,
        receive: Receive | None = None,
    ) -> Answer:
        """The response to one chat, completions or embeddings request."""
        return await self.handle(
            endpoint,
            partial(DECODERS[endpoint], body, prefix_chars=self._prefix_chars),
            authorization=authorization,
            content_type=content_type,
            body=body,
            receive=receive,
        )

    async def handle(
        self,
        endpoint: str,
        decode: Callable[[], RequestView],
        *,
        authorization: str | None,
        content_type: str | None,
        body: bytes | bytearray,
        json_body: bool = True,
        receive: Receive | None = None,
    ) -> Answer:
        """One request, accounted once whatever happens. With the ASGI `receive`, a client
        that goes away while the backend works (prefill, a whole non-streamed answer) cancels
        the upstream request at once; once streaming, `EventStream` watches for it the same
        way."""
        exchange = Exchange(endpoint, clock=self._clock, monotonic=self._monotonic)
        admission: Admission | None = None
        headers: dict[str, str] = {"x-request-id": exchange.request_id}
        streaming = False
        watch: DisconnectWatch | None = None
        try:
            key = self._keys.authenticate(authorization)
            exchange.key_id = key.id
            if json_body and not _is_json(content_type):
                raise UnsupportedMediaType(
                    "Invalid Content-Type header: expected 'application/json'.",
                )
            view = decode()
            exchange.model = view.model
            exchange.stream = view.stream
            entry = self._pool.resolve(view.model)
            exchange.model = entry.name
            self._check(view, key.id, entry.name)
            admission = await self._limiter.admit(key, entry.name)
            headers.update(admission.headers)
            exchange.price_micro_usd, headers[PRICE_HEADER] = self._price(entry)
            exchange.queue_ms = exchange.elapsed_ms()
            self._metrics.observe_overhead(exchange.queue_ms / 1000.0)
            upstream_body = view.upstream_body(body, entry.served_name)
            if receive is not None:
                watch = DisconnectWatch(receive)
            lease, answer = await self._connect(entry.name, view, upstream_body, exchange)
            headers["openai-processing-ms"] = str(int(exchange.elapsed_ms()))
            names = (entry.served_name, entry.name)
            if view.stream and answer.status == 200:
                if watch is not None:
                    watch.stop()
                streaming = True
                translator = self._translator(view, exchange, lease, names)
                events = self._stream(answer, lease, admission, exchange, translator)
                return EventStream(events, headers=headers.items())
            return await self._complete(answer, lease, view, exchange, headers, names=names)
        except GatewayError as error:
            return self._error_answer(error, exchange, headers)
        except asyncio.CancelledError:
            if watch is None or not watch.absorb():
                raise
            exchange.cancelled = True
            exchange.status = CLIENT_CLOSED
            exchange.error_code = "client_closed"
            return JsonResponse(b"", status=CLIENT_CLOSED, headers=headers.items())
        finally:
            if watch is not None:
                watch.stop()
            if not streaming:
                if admission is not None:
                    admission.release()
                self._close(exchange)

    # Hooks (SurfaceRelay overrides them).

    def _check(self, view: RequestView, key_id: str | None, model: str) -> None:
        """Checks that need the key and the model (none here)."""

    def _target(self, view: RequestView) -> tuple[str, str | None]:
        """The backend path and content type the request goes to."""
        return PATHS[view.endpoint], JSON

    def _exclude(
        self, model: str, view: RequestView, exchange: Exchange, tried: set[str]
    ) -> frozenset[str]:
        """Backends this attempt must not go to: those already tried."""
        return frozenset(tried)

    def _translator(
        self, view: RequestView, exchange: Exchange, lease: Lease, names: tuple[str, str]
    ) -> StreamTranslator:
        """What turns the backend's stream into the client's events."""
        return SseRelay(exchange.request_id, forward_usage=view.include_usage, model_names=names)

    def _shape(
        self,
        payload: bytes,
        view: RequestView,
        exchange: Exchange,
        lease: Lease,
        names: tuple[str, str],
    ) -> tuple[bytes, bytes]:
        """A whole answer as the client gets it, and its content type; usage accounted.
        Chat and completions carry our response id and the public model name; embeddings
        come as base64 when the client asked for it."""
        if view.endpoint == "embeddings":
            if view.encoding_format == "base64":
                payload = encode_embeddings_base64(payload)
            head = read_head(payload)
        else:
            payload, head = normalize_body(payload, exchange.request_id, exchange.model)
        if head.usage is not None:
            exchange.prompt_tokens = head.usage.prompt_tokens
            exchange.cached_tokens = head.usage.cached_tokens
            exchange.completion_tokens = head.usage.completion_tokens
        return payload, JSON_TYPE

    async def _failure(
        self, answer: UpstreamResponse, lease: Lease, path: str, model: str
    ) -> Exception:
        """The error for a backend's non-200 answer (retryable where the backend cannot have
        started the work); the lease is finished here."""
        try:
            payload = await answer.read()
        except GatewayError:
            payload = b""
        failure = backend_failure(answer.status, payload)
        if answer.status == 503:
            lease.finish(Outcome.UNAVAILABLE)
            return _RetryableError(failure)
        server_side = answer.status >= 500 or answer.status in (401, 403, 404)
        lease.finish(Outcome.SERVER_ERROR if server_side else Outcome.OK)
        return failure

    # The steps every request goes through.

    def _price(self, entry: ModelEntry) -> tuple[int, str]:
        """The model's price per request as (micro-USD, header value), computed once."""
        price = self._prices.get(entry.name)
        if price is None:
            micro = to_micro_usd(entry.price_per_request)
            price = self._prices[entry.name] = (micro, format_usd(micro))
        return price

    def _error_answer(
        self, error: GatewayError, exchange: Exchange, headers: dict[str, str]
    ) -> JsonResponse:
        exchange.status = error.status
        exchange.error_code = error.instance_code
        if error.headers:
            headers = {**headers, **error.headers}
        return JsonResponse(error.to_json(), status=error.status, headers=headers.items())

    async def _connect(
        self, model: str, view: RequestView, body: bytes, exchange: Exchange
    ) -> tuple[Lease, UpstreamResponse]:
        """The first backend answer with a usable head, retrying where it is safe to."""
        tried: set[str] = set()
        try:
            return await self._attempt(model, view, body, exchange, tried)
        except _RetryableError as failure:
            if self._max_attempts == 1:
                raise failure.error from None
            last = failure.error
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts - 1),
            retry=retry_if_exception_type(_RetryableError),
            reraise=True,
        )
        try:
            return await retrying(self._attempt, model, view, body, exchange, tried)
        except _RetryableError as failure:
            raise failure.error from None
        except NoHealthyBackend:
            raise last from None

    async def _attempt(
        self,
        model: str,
        view: RequestView,
        body: bytes,
        exchange: Exchange,
        tried: set[str],
    ) -> tuple[Lease, UpstreamResponse]:
        hint = RouteHint(view.prefix, float(view.prompt_tokens_estimate))
        lease = self._pool.route(model, hint, self._exclude(model, view, exchange, tried))
        backend_id = lease.backend.id
        if tried:
            exchange.retries += 1
        tried.add(backend_id)
        exchange.backend = backend_id
        path, content_type = self._target(view)
        answer = await self._send(lease, path, body, exchange.request_id, content_type=content_type)
        if answer.status == 200:
            return lease, answer
        raise await self._failure(answer, lease, path, model)

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
        """The backend's answer head; a failure to get one finishes the lease with its cause."""
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

    async def _complete(
        self,
        answer: UpstreamResponse,
        lease: Lease,
        view: RequestView,
        exchange: Exchange,
        headers: dict[str, str],
        *,
        names: tuple[str, str],
    ) -> JsonResponse:
        """A non-streamed answer, read whole and shaped for the client."""
        try:
            payload = await answer.read()
        except (StreamInterrupted, BackendTimeout):
            lease.finish(Outcome.STREAM_CUT)
            raise
        except asyncio.CancelledError:
            lease.finish(Outcome.CANCELLED)
            raise
        lease.finish(Outcome.OK)
        payload, content_type = self._shape(payload, view, exchange, lease, names)
        exchange.completed = True
        exchange.mark_first_byte()
        return JsonResponse(payload, status=200, headers=headers.items(), content_type=content_type)

    def _stream(
        self,
        answer: UpstreamResponse,
        lease: Lease,
        admission: Admission,
        exchange: Exchange,
        translator: StreamTranslator,
    ) -> AsyncGenerator[bytes, None]:
        """The client's stream; when it ends, however it ends, the exchange is closed."""
        return relay_stream(answer, lease, admission, exchange, translator, close=self._close)

    def _close(self, exchange: Exchange) -> None:
        row = exchange.close(self._ledger, self._log)
        if row is not None and row.model is not None:
            self._metrics.model_request(row.model, row.status)
