"""One simulated SGLang server: its engine state, its faults and its listening socket."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from warmgate.backends.sim.config import SimConfig
from warmgate.backends.sim.faults import FaultDice, Faults
from warmgate.backends.sim.generation import Generation, QueueFullError
from warmgate.backends.sim.network import Outlet
from warmgate.backends.sim.prefix_cache import PrefixCache
from warmgate.backends.sim.scheduler import Scheduler, Sleep
from warmgate.backends.sim.telemetry import Telemetry
from warmgate.backends.sim.tokenizer import Tokenizer

SHUTDOWN_GRACE_S = 2.0  # handlers still running after this are cancelled at stop


class Replica:
    """State and lifecycle of one replica; the HTTP routes read and drive it."""

    def __init__(
        self,
        config: SimConfig,
        index: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        draws: random.Random | None = None,
    ) -> None:
        self.config = config
        self.index = index
        # Unseeded structured output (JSON, regex, logprobs) draws from here: a new instance per
        # request, reproducible per replica from config.seed.
        self.draws = draws or random.Random(config.seed * 7919 + index)
        self.faults = Faults.from_config(config)
        self.faults.validate()
        self.dice = FaultDice(config.seed + index)
        self.tokenizer = Tokenizer(config.page_size)
        self.telemetry = Telemetry()
        self.scheduler = Scheduler(
            config, PrefixCache(config.page_size), self.telemetry, monotonic, sleep
        )
        self.scheduler.slow_decode_factor = self.faults.slow_decode_factor
        # one-way network delay to clients, in wall seconds (scaled like every other delay)
        self.network_delay_s = config.network_delay_ms / 1000 * config.time_scale
        self.draining = False
        self.held = 0  # requests held by hang_before_first_byte right now
        self.started = False  # warm-up done: /health may answer 200
        self.startup_time = time.time()
        self.host = "127.0.0.1"
        self.port = 0
        self._monotonic = monotonic
        self._unhung = asyncio.Event()
        if not self.faults.hang_before_first_byte:
            self._unhung.set()
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- lifecycle
    async def start(self, app: web.Application, host: str, port: int) -> None:
        self.host = host
        sock = _listen(host, port)  # first: a port in use fails before anything runs
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=self.config.keep_alive_s,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        await self._runner.setup()
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="sim-scheduler"))
        self._tasks.append(asyncio.create_task(self._warm_up(), name="sim-warm-up"))
        if self.faults.refuse_connections:
            sock.close()
        else:
            await self._open(sock)

    async def stop(self) -> None:
        """End every request (streams get finish_reason "abort" and [DONE]), stop the engine,
        close the sockets."""
        self.scheduler.abort_rid(None, abort_all=True)
        self._unhung.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def _open(self, sock: socket.socket) -> None:
        assert self._runner is not None
        self._site = web.SockSite(self._runner, sock)
        await self._site.start()

    async def _warm_up(self) -> None:
        """SGLang answers /health with 503 until its warm-up generation has run."""
        delay = self.config.startup_s * self.config.time_scale
        if delay > 0:
            await asyncio.sleep(delay)
        self.started = True

    # ---- faults
    async def set_faults(
        self, *, keep_connection: asyncio.BaseTransport | None = None, **changes: Any
    ) -> Faults:
        """Replace the named fault fields. Turning `refuse_connections` on closes the listening
        socket and resets open connections (but `keep_connection`, the caller's own); turning
        it off listens again on the same port."""
        faults = msgspec.structs.replace(self.faults, **changes)
        faults.validate()
        was_refusing = self.faults.refuse_connections
        self.faults = faults
        self.scheduler.slow_decode_factor = faults.slow_decode_factor
        if faults.hang_before_first_byte:
            self._unhung.clear()
        else:
            self._unhung.set()
        if faults.refuse_connections and not was_refusing and self._site is not None:
            site, self._site = self._site, None
            await site.stop()
            self._drop_connections(keep_connection)
        elif was_refusing and not faults.refuse_connections and self._runner is not None:
            await self._open(_listen(self.host, self.port))
        return faults

    def _drop_connections(self, keep: asyncio.BaseTransport | None) -> None:
        """A replica that refuses connections is down: open connections are reset too, so a
        client's pooled keep-alive connection fails as it would against a dead process."""
        server = self._runner.server if self._runner is not None else None
        for handler in server.connections if server is not None else ():
            if handler.transport is not None and handler.transport is not keep:
                handler.transport.abort()

    async def hold_if_hung(self) -> None:
        """Hold a request before its first byte while `hang_before_first_byte` is set."""
        if not self._unhung.is_set():
            self.held += 1
            self.scheduler.notify()
            try:
                await self._unhung.wait()
            finally:
                self.held -= 1

    # ---- health as SGLang reports it
    @property
    def starting(self) -> bool:
        return not self.started or self.faults.never_ready

    def ready(self) -> bool:
        return not (self.starting or self.draining or self.scheduler.paused)

    def healthy_flag(self) -> bool:
        return not (self.starting or self.draining or self.faults.unhealthy)

    # ---- requests
    def submit(self, generation: Generation) -> None:
        self.telemetry.requests_received += 1
        try:
            self.scheduler.submit(generation)
        except QueueFullError:
            self.telemetry.rejected_queue_full += 1
            raise

    def outlet(self, request: web.Request, response: web.StreamResponse) -> Outlet:
        """The way out of a streamed answer, through this replica's network delay."""
        return Outlet(request, response, self.network_delay_s)

    def observe(self, path: str, body: bytes) -> None:
        """Remember the last request body (decoded lazily by /_sim/stats)."""
        self.telemetry.last_request_path = path
        self.telemetry.last_request_body = body


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
