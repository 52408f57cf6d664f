"""The connect stage: a backend chosen, the request sent, the answer's head back.

Retries happen only before any byte reached the client and only where the backend cannot have
started the work (a refused or dropped connection, 503), each time on another backend
(tenacity drives the attempts). A backend's error answer becomes the gateway's error here.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple
from urllib.parse import quote

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from warmgate.proxy.answers.failures import backend_failure, error_text, passed_on_404
from warmgate.proxy.endpoints import Backend404, Endpoint
from warmgate.proxy.errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    GatewayError,
    NoHealthyBackend,
)
from warmgate.proxy.observability.tracing import NO_SPAN
from warmgate.proxy.pipeline.exchange import Exchange
from warmgate.proxy.routing.backend import Outcome
from warmgate.proxy.routing.catalog import ModelEntry
from warmgate.proxy.routing.lease import Lease
from warmgate.proxy.routing.policies import RouteHint
from warmgate.proxy.routing.pool import Pool
from warmgate.proxy.upstream.client import Upstream, UpstreamResponse
from warmgate.proxy.wire.views import RequestView

_log = structlog.get_logger("warmgate.backend")


class Route(NamedTuple):
    """Where a request may go: its model, and the one backend holding the stored response it
    refers to, when it refers to one."""

    entry: ModelEntry
    pinned_backend: str | None = None


class Outgoing(NamedTuple):
    """A request on its way to a backend."""

    endpoint: Endpoint
    view: RequestView
    route: Route
    body: bytes | bytearray  # as the backend gets it
    content_type: str | None
    exchange: Exchange


class Connected(NamedTuple):
    lease: Lease
    answer: UpstreamResponse


class _RetryableError(Exception):
    """A failure where the backend cannot have started the work: try another backend."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class Connector:
    def __init__(self, pool: Pool, upstream: Upstream, *, max_attempts: int = 3) -> None:
        self._pool = pool
        self._upstream = upstream
        self._max_attempts = max(1, max_attempts)

    async def connect(self, outgoing: Outgoing) -> Connected:
        """The first backend answer with a usable head (status 200), retrying where safe."""
        tried: set[str] = set()
        try:
            return await self._attempt(outgoing, tried)
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
            return await retrying(self._attempt, outgoing, tried)
        except _RetryableError as failure:
            raise failure.error from None
        except NoHealthyBackend:
            raise last from None

    async def _attempt(self, outgoing: Outgoing, tried: set[str]) -> Connected:
        endpoint, view, route, _, _, exchange = outgoing
        model = route.entry.name
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
        answer = await self._send(lease, path, outgoing)
        if answer.status == 200:
            if trace is not None:
                trace.answer_started()
            return Connected(lease, answer)
        raise await self._failure(outgoing, answer, lease, path)

    def _excluded(self, model: str, route: Route, tried: set[str]) -> frozenset[str]:
        """Backends this attempt must not go to: those tried, and all but the pinned one."""
        if route.pinned_backend is None:
            return frozenset(tried)
        members = self._pool.snapshot.members.get(model, ())
        others = {m.backend.id for m in members if m.backend.id != route.pinned_backend}
        return frozenset(tried | others)

    async def _send(self, lease: Lease, path: str, outgoing: Outgoing) -> UpstreamResponse:
        """The backend's answer head; a failure to get one finishes the lease with its cause.
        A traced request's `connect` span lasts until the head arrives (or the failure)."""
        backend = lease.backend
        trace = outgoing.exchange.trace
        span = trace.span("connect") if trace is not None else None
        error_code: str | None = "cancelled"
        try:
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
            raise _RetryableError(error) from None
        except BackendTimeout as error:
            error_code = error.instance_code
            lease.finish(Outcome.TIMEOUT_BEFORE_FIRST_BYTE)
            raise
        except BackendError as error:
            error_code = error.instance_code
            lease.finish(Outcome.SERVER_ERROR)
            raise
        except asyncio.CancelledError:
            lease.finish(Outcome.CANCELLED)
            raise
        finally:
            if span is not None:
                span.end(error_code)

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
