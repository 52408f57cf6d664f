"""The request path, one named stage after another, for every endpoint of the table.

authenticate → receive → decode → resolve → authorize → bound → admit → connect → respond →
account

`Relay.handle(endpoint, inbound)` runs the stages for one request and returns its answer as a
bare ASGI app (`proxy.pipeline.replies`). The key and the content type are checked from the
headers alone, before a byte of the body is read: an unauthenticated upload is refused without
being received. The body is decoded once (`proxy.wire`) and the
original bytes go upstream (only the model name and the usage flag may be spliced in); a stream
is relayed chunk by chunk (`proxy.pipeline.streaming`); in a `finally` the request's `Exchange`
is closed exactly once: one ledger row and one log line per request id. What differs between
endpoints is data in the endpoint table (`proxy.endpoints`), not code here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec
import structlog
from litestar.types import Receive

from warmgate.proxy.answers.shaping import AnswerContext
from warmgate.proxy.endpoints import Body, Endpoint
from warmgate.proxy.errors import (
    BackendTimeout,
    GatewayError,
    ModelNotFound,
    NotFound,
    QuotaExceeded,
    RateLimited,
    StreamInterrupted,
)
from warmgate.proxy.keys.key import Key
from warmgate.proxy.keys.ring import KeyRing
from warmgate.proxy.ledger.row import format_usd, to_micro_usd
from warmgate.proxy.limits.admission import Admission, Limiter
from warmgate.proxy.media import JSON, is_json
from warmgate.proxy.observability.metrics import Metrics
from warmgate.proxy.observability.tracing import PassedThrough, Tracer, parse_trace_context
from warmgate.proxy.pipeline.connect import Connected, Connector, Outgoing, Route
from warmgate.proxy.pipeline.exchange import Exchange, LedgerSink, RequestSink
from warmgate.proxy.pipeline.replies import (
    Answer,
    DisconnectWatch,
    EventStream,
    JsonResponse,
    error_response,
)
from warmgate.proxy.pipeline.streaming import relay_stream
from warmgate.proxy.routing.backend import Outcome
from warmgate.proxy.routing.bindings import Binding, ResponseBindings
from warmgate.proxy.routing.catalog import ModelEntry
from warmgate.proxy.routing.pool import Pool
from warmgate.proxy.settings import ModelSettings, UpstreamSettings
from warmgate.proxy.upstream.client import Upstream
from warmgate.proxy.wire.bounds import check_model_bounds
from warmgate.proxy.wire.multipart import boundary_of
from warmgate.proxy.wire.rejection import wrong_content_type
from warmgate.proxy.wire.views import DecodeOptions, RequestView

# Enum members read per request, looked up once here: on Python 3.11 each `Enum.MEMBER`
# read goes through the enum metaclass's __getattr__ hook, a slow generic lookup.
_JSON_BODY, _FORM_BODY = Body.JSON, Body.FORM
_OK, _SERVER_ERROR, _STREAM_CUT, _CANCELLED = (
    Outcome.OK,
    Outcome.SERVER_ERROR,
    Outcome.STREAM_CUT,
    Outcome.CANCELLED,
)

PRICE_HEADER = "x-warmgate-price-usd"
# The status a request that the client abandoned is accounted with (nothing is sent).
CLIENT_CLOSED = 499
_INTERNAL_ERROR = "The server had an error while processing your request."
_log = structlog.get_logger("warmgate.errors")


class ClientGoneError(Exception):
    """The client left before its request's body had arrived."""


class Inbound(msgspec.Struct, frozen=True):
    """A request as the HTTP entry has it: its head read, its body not yet."""

    authorization: str | None
    content_type: str | None
    # Reads the whole body once; called only once the key and the content type passed. Raises
    # PayloadTooLarge past the endpoint's limit, ClientGoneError when the client leaves.
    read_body: Callable[[], Awaitable[bytes | bytearray]]
    path_params: Mapping[str, str]
    # Once the body is in, a client that leaves while the backend works cancels the request
    # (`DisconnectWatch` on this channel); None: not watched.
    receive: Receive | None = None
    # W3C trace context as the client sent it (passed on to the backend).
    traceparent: str | None = None
    tracestate: str | None = None


class _Received(msgspec.Struct, frozen=True):
    """The request as a decoder reads it (`proxy.wire.views.RawRequest`)."""

    body: bytes | bytearray
    content_type: str | None
    path_params: Mapping[str, str]


class Relay:
    def __init__(
        self,
        *,
        keys: KeyRing,
        limiter: Limiter,
        pool: Pool,
        bindings: ResponseBindings,
        upstream: Upstream,
        ledger: LedgerSink,
        log: RequestSink,
        metrics: Metrics,
        tracer: Tracer | None = None,
        upstream_settings: UpstreamSettings | None = None,
        models: Sequence[ModelSettings] = (),
        decode_options: DecodeOptions | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._limiter = limiter
        self._pool = pool
        self._bindings = bindings
        self._connector = Connector(
            pool, upstream, settings=upstream_settings, models=models, metrics=metrics
        )
        self._ledger = ledger
        self._log = log
        self._metrics = metrics
        # Exporting spans; None: a request's own trace context is passed on, nothing recorded.
        self._tracer = tracer
        self._decode_options = decode_options or DecodeOptions()
        self._prices: dict[str, tuple[int, str]] = {}
        self._clock = clock
        self._monotonic = monotonic

    async def handle(self, endpoint: Endpoint, inbound: Inbound) -> Answer:
        """One request, accounted once whatever happens. With `inbound.receive`, a client that
        goes away while the backend works (prefill, a whole non-streamed answer) cancels the
        upstream request at once; once streaming, `EventStream` watches the same way."""
        exchange = self._open(endpoint, inbound)
        headers: dict[str, str] = {"x-request-id": exchange.request_id}
        admission: Admission | None = None
        streaming = False
        watch: DisconnectWatch | None = None
        try:
            key = self._authenticate(inbound, exchange)
            received = await self._receive(endpoint, inbound)
            if inbound.receive is not None:
                watch = DisconnectWatch(inbound.receive)
            view = self._decode(endpoint, received, exchange)
            route = (
                self._resolve(view, exchange)
                if view.response_ref is None
                else await self._resolve_stored(view, key, exchange)
            )
            self._authorize(key, view, route)
            self._bound(view, route)
            admission = await self._admit(key, route, exchange, headers)
            body = endpoint.prepare(view, received.body, route.entry.served_name)
            connected = await self._connector.connect(
                Outgoing(
                    endpoint, view, route, body, self._upstream_type(endpoint, inbound), exchange
                )
            )
            headers["openai-processing-ms"] = str(int(exchange.elapsed_ms()))
            context = AnswerContext(
                exchange.request_id, (route.entry.served_name, route.entry.name), view
            )
            translate = endpoint.translate
            if view.stream and translate is not None:
                if watch is not None:
                    watch.stop()
                streaming = True
                lease, answer = connected.lease, connected.answer
                bind, settle = self._binder(exchange, lease.backend.id)
                events = relay_stream(
                    answer,
                    lease,
                    admission,
                    exchange,
                    translate(context, bind),
                    close=self._account,
                    settle=settle,
                )
                return EventStream(events, headers=headers.items())
            return await self._respond(endpoint, context, connected, exchange, headers)
        except GatewayError as error:
            return self._refuse(error, exchange, headers)
        except asyncio.CancelledError:
            if watch is None or not watch.absorb():
                raise
            return self._client_left(exchange, headers)
        except ClientGoneError:
            return self._client_left(exchange, headers)
        except Exception as exc:  # noqa: BLE001  # a bug: OpenAI's 500 under this request's id
            _log.error("unhandled_error", error=type(exc).__name__, endpoint=endpoint.name)
            failure = GatewayError(_INTERNAL_ERROR, code="internal_error")
            return self._refuse(failure, exchange, headers)
        finally:
            if watch is not None:
                watch.stop()
            if not streaming:
                if admission is not None:
                    admission.release()
                self._account(exchange)

    def _open(self, endpoint: Endpoint, inbound: Inbound) -> Exchange:
        """The request's exchange, with its trace: the gateway's own span when tracing is on,
        else the client's trace context passed through as it came."""
        exchange = Exchange(
            endpoint.name,
            id_prefix=endpoint.id_prefix,
            billable=endpoint.billable,
            clock=self._clock,
            monotonic=self._monotonic,
        )
        if self._tracer is not None:
            incoming = parse_trace_context(inbound.traceparent, inbound.tracestate)
            exchange.trace = self._tracer.start(incoming)
        elif inbound.traceparent is not None:
            incoming = parse_trace_context(inbound.traceparent, inbound.tracestate)
            exchange.trace = PassedThrough(incoming) if incoming is not None else None
        return exchange

    def _refuse(
        self, error: GatewayError, exchange: Exchange, headers: dict[str, str]
    ) -> JsonResponse:
        """`error` as the answer, accounted as such."""
        exchange.status = error.status
        exchange.error_code = error.instance_code
        if isinstance(error, RateLimited | QuotaExceeded):
            self._metrics.refused(error.limit)
        return error_response(error, exchange.request_id, headers.items())

    # The stages, in the order they run.

    def _authenticate(self, inbound: Inbound, exchange: Exchange) -> Key:
        key = self._keys.authenticate(inbound.authorization)
        exchange.key_id = key.id
        return key

    @staticmethod
    async def _receive(endpoint: Endpoint, inbound: Inbound) -> _Received:
        """The body, once its content type is one the endpoint takes (OpenAI's 400 if not)."""
        content_type = inbound.content_type
        if endpoint.body is _JSON_BODY and not is_json(content_type):
            raise wrong_content_type(content_type, JSON)
        if endpoint.body is _FORM_BODY and boundary_of(content_type) is None:
            raise wrong_content_type(content_type, "multipart/form-data with a boundary")
        body = await inbound.read_body()
        return _Received(body, content_type, inbound.path_params)

    def _decode(self, endpoint: Endpoint, received: _Received, exchange: Exchange) -> RequestView:
        view = endpoint.decode(received, self._decode_options)
        exchange.model = view.model or None
        exchange.stream = view.stream
        return view

    def _resolve(self, view: RequestView, exchange: Exchange) -> Route:
        """The model's catalog entry."""
        entry = self._pool.resolve(view.model)
        exchange.model = entry.name
        return Route(entry)

    async def _resolve_stored(self, view: RequestView, key: Key, exchange: Exchange) -> Route:
        """For a request that names a stored response: the model's entry and the backend
        holding the response (from memory, or one read of the shared store). A response is
        found only by the key that created it, and only under the model it was created with."""
        assert view.response_ref is not None
        binding = await self._bindings.find(view.response_ref, key.id)
        model = view.model or (binding.model if binding is not None else "")
        bound = self._pool.resolve(model) if model else None
        if binding is None or bound is None or binding.model != bound.name:
            raise NotFound(
                f"Response with id '{view.response_ref}' not found.",
                param=view.response_ref_param,
            )
        exchange.model = bound.name
        return Route(bound, binding.backend_id)

    def _authorize(self, key: Key, view: RequestView, route: Route) -> None:
        """The key's model allow-list: checked here, before any limit and whatever `[limits]`
        says; a forbidden model gets the very answer an unknown one gets."""
        if not key.may_use(route.entry.name):
            raise ModelNotFound.named(view.model or route.entry.name)

    @staticmethod
    def _bound(view: RequestView, route: Route) -> None:
        """What the request asks of the model, within what the model can do (after the
        allow-list: a key learns nothing of a model it may not use)."""
        entry = route.entry
        check_model_bounds(
            view,
            context_length=entry.context_length,
            embedding_dimensions=entry.embedding_dimensions,
        )

    async def _admit(
        self, key: Key, route: Route, exchange: Exchange, headers: dict[str, str]
    ) -> Admission:
        trace = exchange.trace
        if trace is None:
            admission = await self._limiter.admit(key, route.entry.name)
        else:
            span = trace.span("admission")
            error_code: str | None = "cancelled"
            try:
                admission = await self._limiter.admit(key, route.entry.name)
                error_code = None
            except GatewayError as error:
                error_code = error.instance_code
                raise
            finally:
                span.end(error_code)
        headers.update(admission.headers)
        exchange.price_micro_usd, headers[PRICE_HEADER] = self._price(route.entry)
        exchange.queue_ms = exchange.elapsed_ms()
        self._metrics.observe_overhead(exchange.queue_ms / 1000.0)
        return admission

    async def _respond(
        self,
        endpoint: Endpoint,
        context: AnswerContext,
        connected: Connected,
        exchange: Exchange,
        headers: dict[str, str],
    ) -> JsonResponse:
        """A whole answer, read and shaped for the client."""
        lease, answer = connected.lease, connected.answer
        # An answer that cannot be read (HTML from a proxy in between, a truncated body, one
        # over [server] max_answer_bytes) is the backend's failure: a 502, never billed.
        outcome = _SERVER_ERROR
        try:
            payload = await answer.read()
            shaped = endpoint.shape(payload, context)
            outcome = _OK
        except (StreamInterrupted, BackendTimeout):
            outcome = _STREAM_CUT
            raise
        except asyncio.CancelledError:
            outcome = _CANCELLED
            raise
        finally:
            lease.finish(outcome)
        if shaped.usage is not None:
            exchange.prompt_tokens = shaped.usage.prompt_tokens
            exchange.cached_tokens = shaped.usage.cached_tokens
            exchange.completion_tokens = shaped.usage.completion_tokens
        if shaped.response_id is not None:
            # Written before the answer leaves: the client's next request may reach any edge.
            await self._bindings.landed(self._bind(shaped.response_id, exchange, lease.backend.id))
        exchange.completed = True
        exchange.mark_first_byte()
        return JsonResponse(
            shaped.payload, status=200, headers=headers.items(), content_type=shaped.content_type
        )

    @staticmethod
    def _client_left(exchange: Exchange, headers: dict[str, str]) -> JsonResponse:
        """Accounted as abandoned; the answer goes nowhere."""
        exchange.cancelled = True
        exchange.status = CLIENT_CLOSED
        exchange.error_code = "client_closed"
        return JsonResponse(b"", status=CLIENT_CLOSED, headers=headers.items())

    def _account(self, exchange: Exchange) -> None:
        row = exchange.close(self._ledger, self._log)
        if row is not None:
            self._metrics.account(row)

    # What the stages share.

    @staticmethod
    def _upstream_type(endpoint: Endpoint, inbound: Inbound) -> str | None:
        if endpoint.body is _JSON_BODY:
            return JSON
        if endpoint.body is _FORM_BODY:
            return inbound.content_type  # the boundary travels with the form
        return None

    def _price(self, entry: ModelEntry) -> tuple[int, str]:
        """The model's price per request as (micro-USD, header value), computed once."""
        price = self._prices.get(entry.name)
        if price is None:
            micro = to_micro_usd(entry.price_per_request)
            price = self._prices[entry.name] = (micro, format_usd(micro))
        return price

    def _bind(
        self, response_id: str, exchange: Exchange, backend_id: str
    ) -> asyncio.Future[None] | None:
        """Bind a stored response to its backend; the write to wait for, if any."""
        if response_id and exchange.model is not None:
            return self._bindings.bind(
                response_id, Binding(exchange.key_id, exchange.model, backend_id)
            )
        return None

    def _binder(
        self, exchange: Exchange, backend_id: str
    ) -> tuple[Callable[[str], None], Callable[[], Awaitable[None]]]:
        """For a stream: binds a stored response to its backend as soon as the stream names
        it, and (the second) waits for that binding's write before the stream's last event."""
        written: list[asyncio.Future[None]] = []

        def bind(response_id: str) -> None:
            landed = self._bind(response_id, exchange, backend_id)
            if landed is not None:
                written.append(landed)

        async def settle() -> None:
            for landed in written:
                await self._bindings.landed(landed)

        return bind, settle
