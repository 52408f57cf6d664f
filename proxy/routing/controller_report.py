"""Reporting an edge's requests to SkyServe controllers, as SkyServe's own load balancer does.

Edges send traffic straight to SkyServe replicas, so SkyServe's load balancer (and with it the
autoscaler behind `target_qps_per_replica`) would see none of it. SkyServe 0.14's load balancer
tells its controller what it served in one call, `POST <controller>/controller/load_balancer_sync`
with `{"request_aggregator": {"timestamps": [<unix s>, ...]}}` (the arrival time of every
request since its last call), every 20 s (`LB_CONTROLLER_SYNC_INTERVAL_SECONDS`), with a 5 s
timeout; it clears what it sent once the controller answered, keeps it when the call failed,
and reads the controller's answer, `{"replica_info": {<ready replica URL>: {...}}}`, as the
replicas of the active versions. The controller's autoscaler keeps the timestamps of the last
60 s and targets ceil(requests / 60 s / target_qps_per_replica) replicas. Every edge reporting
this way is one more load balancer to the controller: the counts add up.

`record(service)` is what the request path calls, once per request sent to a replica of that
service: an append to a list, no I/O. `run()` (or `start()` ... `close()`) posts each service's
timestamps to its controller every `interval_s`; `close()` sends what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping

import httpx
import msgspec
import structlog

SYNC_PATH = "/controller/load_balancer_sync"
# SkyServe 0.14.1: sky/serve/constants.py LB_CONTROLLER_SYNC_INTERVAL_SECONDS and the timeout of
# the load balancer's sync call (sky/serve/load_balancer.py).
DEFAULT_INTERVAL_S = 20.0
DEFAULT_TIMEOUT_S = 5.0
# The autoscaler counts requests of its last 60 s (AUTOSCALER_QPS_WINDOW_SIZE_SECONDS); older
# ones that could not be delivered are dropped rather than piled up.
QPS_WINDOW_S = 60.0

log = structlog.get_logger("warmgate.controller_report")


class LoadBalancerSync(msgspec.Struct):
    """The controller's answer: the replicas it would send traffic to."""

    replica_info: dict[str, dict[str, object]] = {}


_encode = msgspec.json.Encoder().encode
_decode_answer = msgspec.json.Decoder(LoadBalancerSync).decode


class ControllerReport:
    """Request timestamps per SkyServe service, posted to each service's controller."""

    def __init__(
        self,
        controllers: Mapping[str, str] | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Service name -> controller base URL (the backends document's `controllers`).
        self._controllers: dict[str, str] = dict(controllers or {})
        self._interval_s = interval_s
        # Wall-clock seconds: the controller compares them with its own time.time().
        self._clock = clock
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self._pending: dict[str, list[float]] = {}
        self._ready_urls: dict[str, tuple[str, ...]] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # The request path ---------------------------------------------------------------------

    def record(self, service: str, now: float | None = None) -> None:
        """One request sent to a replica of `service`, at `now` (default: the clock)."""
        stamps = self._pending.get(service)
        if stamps is None:
            stamps = self._pending[service] = []
        stamps.append(self._clock() if now is None else now)

    # Settings that change while running ---------------------------------------------------

    def set_controllers(self, controllers: Mapping[str, str]) -> None:
        """A new backends document: report to these controllers from the next round on."""
        self._controllers = dict(controllers)

    def ready_urls(self, service: str) -> tuple[str, ...]:
        """The replica URLs the service's controller last named as ready and active."""
        return self._ready_urls.get(service, ())

    def pending(self, service: str) -> int:
        """Requests recorded and not yet delivered."""
        return len(self._pending.get(service, ()))

    # Reporting ----------------------------------------------------------------------------

    async def report_once(self) -> dict[str, bool]:
        """Post every service's timestamps to its controller; service -> delivered."""
        cutoff = self._clock() - QPS_WINDOW_S
        results = {}
        for service in list(self._pending):
            controller = self._controllers.get(service)
            stamps = self._pending.pop(service)
            if controller is None:
                continue  # no controller known (a plain cluster, or not in the document)
            delivered = await self._post(service, controller, stamps)
            results[service] = delivered
            if not delivered:
                # Keep them (sorted: older first) for the next round, as SkyServe's balancer
                # does, but no further back than the autoscaler would still count.
                kept = [stamp for stamp in stamps if stamp >= cutoff]
                self._pending[service] = kept + self._pending.get(service, [])
        return results

    async def _post(self, service: str, controller: str, stamps: list[float]) -> bool:
        body = _encode({"request_aggregator": {"timestamps": stamps}})
        try:
            response = await self._client.post(
                controller.rstrip("/") + SYNC_PATH,
                content=body,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.warning(
                "controller_report_failed",
                service=service,
                error_type=type(exc).__name__,
                requests=len(stamps),
            )
            return False
        # Like SkyServe's balancer: once the controller answered, what was sent is done with,
        # even when the answer is an error (the controller has read or rejected it).
        if response.status_code != httpx.codes.OK:
            log.warning(
                "controller_report_rejected",
                service=service,
                status=response.status_code,
                requests=len(stamps),
            )
            return True
        try:
            answer = _decode_answer(response.content)
        except msgspec.DecodeError:
            log.warning("controller_report_unreadable", service=service)
            return True
        self._ready_urls[service] = tuple(answer.replica_info)
        return True

    async def run(self) -> None:
        """Report every `interval_s` until `close()`; then report what is left, once."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
            await self.report_once()
        await self.report_once()  # what was recorded while the last round was in flight

    def start(self) -> None:
        """Run the loop as a task owned by this object (`close()` ends it)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def close(self) -> None:
        """Stop the loop (it sends what is left) and close the HTTP client."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        else:
            await self.report_once()
        await self._client.aclose()
