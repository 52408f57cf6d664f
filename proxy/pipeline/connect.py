"""The connect stage: a backend chosen, the request sent, the answer's first byte back.

Retries happen only before any byte reached the client and only where the backend's work died
with the attempt, each time on another backend (tenacity drives the attempts):
- a refused connection or a 503: the backend cannot have started; up to `max_attempts`;
- a connection dropped after the body was sent, or no first byte within the first-byte
  budget (`proxy.pipeline.first_byte`; the attempt is abandoned, its connection closed):
  the request itself may be the cause (a query of death), so it is sent to at most
  `suspect_attempts` backends (a backend that refused the connection was not sent it).
Every retry needs room in the fleet's retry budget (`proxy.pipeline.retry_budget`), except one
after a refused connection: that backend never had the request, so the retry adds no work to
the fleet, and it is how traffic leaves replicas that went down (a region failing over) before
their probes eject them. A backend's error answer becomes the gateway's error here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import quote

import msgspec
import structlog
from tenacity import AsyncRetrying, retry_if_exception_type

from warmgate.proxy.answers.failures import backend_failure, error_text, passed_on_404
from warmgate.proxy.endpoints import Backend404, Endpoint
from warmgate.proxy.errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    GatewayError,
    NoHealthyBackend,
)
from warmgate.proxy.observability.metrics import Metrics
from warmgate.proxy.observability.tracing import NO_SPAN
from warmgate.proxy.pipeline.deadline import Deadline
from warmgate.proxy.pipeline.exchange import Exchange
from warmgate.proxy.pipeline.first_byte import FirstByteBudgets
from warmgate.proxy.pipeline.retry_budget import REFUSED_BUDGET, REFUSED_SUSPECT, RetryBudget
from warmgate.proxy.routing.backend import Outcome
from warmgate.proxy.routing.catalog import ModelEntry
from warmgate.proxy.routing.lease import Lease
from warmgate.proxy.routing.policies import RouteHint
from warmgate.proxy.routing.pool import Pool
from warmgate.proxy.settings import ModelSettings, UpstreamSettings
from warmgate.proxy.upstream.client import ConnectionDropped, Upstream, UpstreamResponse
from warmgate.proxy.wire.views import RequestView

_log = structlog.get_logger("warmgate.backend")


class Route(msgspec.Struct, frozen=True):
    """Where a request may go: its model, and the one backend holding the stored response it
    refers to, when it refers to one."""

    entry: ModelEntry
    pinned_backend: str | None = None


class Outgoing(msgspec.Struct, frozen=True):
    """A request on its way to a backend."""

    endpoint: Endpoint
    view: RequestView
    route: Route
    body: bytes | bytearray  # as the backend gets it
    content_type: str | None
    exchange: Exchange


class Connected(msgspec.Struct, frozen=True):
    lease: Lease
    answer: UpstreamResponse


class _RetryableError(Exception):
    """A failure after which another backend may take the request: `suspect` when the request
    itself may have caused it (it was sent, and no answer came); `refused` when the backend
    never had it (the connection was refused)."""

    def __init__(
        self, error: GatewayError, *, suspect: bool = False, refused: bool = False
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.suspect = suspect
        self.refused = refused


class _Attempts(msgspec.Struct):
    """One request's attempts so far: the backends tried, how many of them were sent the
    request (a refused connection was not), whether a failure was suspect, and whether the
    last one was a refused connection. (A Struct: made in C, once per request.)"""

    tried: set[str] = msgspec.field(default_factory=set)
    delivered: int = 0
    suspect: bool = False
    refused: bool = False


class Connector:
    def __init__(
        self,
        pool: Pool,
        upstream: Upstream,
        *,
        settings: UpstreamSettings | None = None,
        models: Sequence[ModelSettings] = (),
        metrics: Metrics | None = None,
    ) -> None:
        settings = settings or UpstreamSettings()
        self._pool = pool
        self._upstream = upstream
        self._max_attempts = max(1, settings.max_attempts)
        self._suspect_attempts = settings.suspect_attempts
        self._first_byte = FirstByteBudgets(settings, models)
        self.retry_budget = RetryBudget(
            ratio=settings.retry_budget_ratio, minimum=settings.retry_budget_min
        )
        if metrics is not None:
            metrics.add_collector(self.retry_budget.metric_families)

    async def connect(self, outgoing: Outgoing) -> Connected:
        """The first backend answer with a usable head (status 200), retrying where safe."""
        attempts = _Attempts()
        self.retry_budget.request()
        try:
            return await self._attempt(outgoing, attempts)
        except _RetryableError as failure:
            last = failure.error
            if self._stop(attempts):
                raise last from None
        retrying = AsyncRetrying(
            stop=lambda _: self._stop(attempts),
            retry=retry_if_exception_type(_RetryableError),
            reraise=True,
        )
        try:
            return await retrying(self._retry, outgoing, attempts)
        except _RetryableError as failure:
            raise failure.error from None
        except NoHealthyBackend:
            raise last from None

    def _stop(self, attempts: _Attempts) -> bool:
        """Whether the request gets no further attempt (a refusal is counted)."""
        tried = len(attempts.tried)
        if tried >= self._max_attempts:
            return True
        if attempts.suspect and attempts.delivered >= self._suspect_attempts:
            self.retry_budget.refuse(REFUSED_SUSPECT)
            return True
        if not attempts.refused and not self.retry_budget.allows():
            self.retry_budget.refuse(REFUSED_BUDGET)
            return True
        return False

    async def _retry(self, outgoing: Outgoing, attempts: _Attempts) -> Connected:
        self.retry_budget.started(budgeted=not attempts.refused)
        return await self._attempt(outgoing, attempts)

    async def _attempt(self, outgoing: Outgoing, attempts: _Attempts) -> Connected:
        endpoint, view, route, exchange = (
            outgoing.endpoint,
            outgoing.view,
            outgoing.route,
            outgoing.exchange,
        )
        model = route.entry.name
        tried = attempts.tried
        hint = RouteHint(view.prefix, float(view.prompt_tokens_estimate))
        excluded = self._excluded(model, route, tried)
        trace = exchange.trace
        if trace is None:
            lease = self._pool.route(model, hint, excluded)
        else:
            span = trace.span("routing")
            error_code: str | None = "failed"
            try:
                lease = self._pool.route(model, hint, excluded)
                error_code = None
            except GatewayError as error:
                error_code = error.instance_code
                raise
            finally:
                span.end(error_code)
        if tried:
            exchange.retries += 1
        tried.add(lease.backend.id)
        exchange.backend = lease.backend.id
        path = endpoint.upstream_path
        if view.response_ref is not None and "{" in path:
            path = path.format(response_id=quote(view.response_ref, safe=""))
        stream = view.stream and endpoint.translate is not None
        budget_s = self._first_byte.seconds(model, view.prompt_tokens_estimate, stream=stream)
        deadline = None if budget_s is None else Deadline(budget_s)  # the head and 1st chunk
        try:
            answer = await self._send(lease, path, outgoing, deadline)
            if stream and answer.status == 200:
                await self._peek(answer, lease, outgoing, deadline)
        except _RetryableError as failure:
            attempts.suspect = attempts.suspect or failure.suspect
            attempts.refused = failure.refused
            attempts.delivered += not failure.refused
            raise
        finally:
            if deadline is not None:
                deadline.disarm()
        if answer.status == 200:
            if trace is not None:
                trace.answer_started()
            return Connected(lease, answer)
        raise await self._failure(outgoing, answer, lease, path)

    @staticmethod
    def _timed_out(lease: Lease, outgoing: Outgoing) -> _RetryableError:
        """An attempt past its first-byte budget: abandoned (the caller closed its connection),
        counted against the backend, and suspect (the request may be what wedged it)."""
        lease.finish(Outcome.TIMEOUT_BEFORE_FIRST_BYTE)
        _log.warning(
            "backend_first_byte_timeout",
            request_id=outgoing.exchange.request_id,
            backend=lease.backend.id,
        )
        error = BackendTimeout("The model backend sent nothing within its first-byte budget.")
        return _RetryableError(error, suspect=True)

    def _excluded(self, model: str, route: Route, tried: set[str]) -> frozenset[str]:
        """Backends this attempt must not go to: those tried, and all but the pinned one."""
        if route.pinned_backend is None:
            return frozenset(tried)
        members = self._pool.snapshot.members.get(model, ())
        others = {m.backend.id for m in members if m.backend.id != route.pinned_backend}
        return frozenset(tried | others)

    async def _send(
        self, lease: Lease, path: str, outgoing: Outgoing, deadline: Deadline | None
    ) -> UpstreamResponse:
        """The backend's answer head, by `deadline` (None: no first-byte budget); a failure to
        get one finishes the lease with its cause. A traced request's `connect` span lasts
        until the head arrives (or the failure)."""
        backend = lease.backend
        trace = outgoing.exchange.trace
        span = trace.span("connect") if trace is not None else None
        error_code: str | None = "cancelled"
        try:
            # Past the deadline `post` is cancelled, which closes its connection.
            answer = await self._upstream.post(
                backend.url + path,
                outgoing.body,
                api_key=backend.api_key,
                request_id=outgoing.exchange.request_id,
                method=outgoing.endpoint.upstream_method,
                content_type=outgoing.content_type,
                trace_headers=None if trace is None else trace.upstream_headers(span or NO_SPAN),
            )
            error_code = None if answer.status == 200 else f"status {answer.status}"
            return answer
        except BackendUnreachable as error:
            error_code = error.instance_code
            lease.finish(Outcome.CONNECT_FAILED)
            dropped = isinstance(error, ConnectionDropped)
            raise _RetryableError(error, suspect=dropped, refused=not dropped) from None
        except BackendTimeout as error:
            error_code = error.instance_code
            lease.finish(Outcome.TIMEOUT_BEFORE_FIRST_BYTE)
            raise
        except BackendError as error:
            error_code = error.instance_code
            lease.finish(Outcome.SERVER_ERROR)
            raise
        except asyncio.CancelledError:
            if deadline is not None and deadline.expired():
                error_code = BackendTimeout.code
                raise self._timed_out(lease, outgoing) from None
            lease.finish(Outcome.CANCELLED)
            raise
        finally:
            if span is not None:
                span.end(error_code)

    async def _peek(
        self,
        answer: UpstreamResponse,
        lease: Lease,
        outgoing: Outgoing,
        deadline: Deadline | None,
    ) -> None:
        """A stream's first chunk, by `deadline`: a head may come before the first token. A
        failure to get one closes the connection and finishes the lease with its cause."""
        try:
            await answer.peek()
        except BackendTimeout:
            answer.abort()
            lease.finish(Outcome.TIMEOUT_BEFORE_FIRST_BYTE)
            raise
        except BackendError:
            answer.abort()
            lease.finish(Outcome.STREAM_CUT)
            raise
        except asyncio.CancelledError:
            answer.abort()
            if deadline is not None and deadline.expired():
                raise self._timed_out(lease, outgoing) from None
            lease.finish(Outcome.CANCELLED)
            raise

    async def _failure(
        self, outgoing: Outgoing, answer: UpstreamResponse, lease: Lease, path: str
    ) -> Exception:
        """The error for a backend's non-200 answer (retryable where the backend cannot have
        started the work); the lease is finished here."""
        try:
            payload = await answer.read()
        except GatewayError:
            payload = b""
        # The client gets the backend's words only where they are known to be safe
        # (`proxy.answers.failures`); the operator gets them here, the backend's key blanked.
        text = error_text(payload)
        if lease.backend.api_key:
            text = text.replace(lease.backend.api_key, "***")
        _log.warning(
            "backend_error_answer",
            request_id=outgoing.exchange.request_id,
            backend=lease.backend.id,
            status=answer.status,
            text=text,
        )
        if answer.status == 404 and outgoing.endpoint.backend_404 is Backend404.PASSED_ON:
            lease.finish(Outcome.OK)
            return passed_on_404(
                payload,
                model=outgoing.route.entry.name,
                path=path,
                param=outgoing.view.response_ref_param,
            )
        failure = backend_failure(answer.status, payload)
        if answer.status == 503:
            lease.finish(Outcome.UNAVAILABLE)
            return _RetryableError(failure)
        server_side = answer.status >= 500 or answer.status in (401, 403, 404)
        lease.finish(Outcome.SERVER_ERROR if server_side else Outcome.OK)
        return failure
