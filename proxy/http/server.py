"""The gateway on uvicorn (httptools; uvloop where installed), with Warmgate's shutdown.

The socket is bound before the server starts (connections wait in its backlog until the app is
ready, so a printed URL is good at once); the resources start around uvicorn, so that a SIGTERM
drains them while the socket still answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType

import uvicorn
from litestar import Litestar

from warmgate.proxy.http.protocol import guarded_protocol
from warmgate.proxy.runtime import Runtime

BACKLOG = 2048
# Once drained (or out of drain time), how long uvicorn waits for answers still being written.
FINAL_WRITES_S = 2


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts: connections made from now on
    wait in the backlog until the app is ready, so the printed URL is good at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class GracefulServer(uvicorn.Server):
    """uvicorn, with Warmgate's shutdown: the first SIGTERM (or Ctrl+C) runs `drain` while the
    socket still accepts, so `/ready` answers 503 and new requests are refused in OpenAI's shape
    as streams in flight finish; then uvicorn closes the socket and the lifespan flushes the
    ledger. A second signal stops waiting. The signal is not re-raised afterwards: a graceful
    stop exits with status 0.

    `handle_exit` is uvicorn's signal hook (the same signature from 0.35 to 0.55); the rest is
    its public surface: `serve(sockets=...)`, `started`, `should_exit`, `force_exit`."""

    def __init__(
        self,
        config: uvicorn.Config,
        drain: Callable[[], Awaitable[object]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(config)
        self._drain = drain
        self._loop = loop
        self._draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining is not None or not self.started:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        if self._draining is None:
            self._draining = self._loop.create_task(self._drain_then_exit(), name="warmgate-drain")

    async def _drain_then_exit(self) -> None:
        try:
            await self._drain()
        finally:
            self.should_exit = True


def describe(exc: BaseException) -> str:
    """One line for an error that stops the gateway from starting: the innermost cause of a
    task group's failure."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def _stop_signals_to(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGTERM and SIGINT handled by `handler` (in the main thread only, where signals are
    delivered); the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


async def run(
    app: Litestar, config: uvicorn.Config, sock: socket.socket, stop_when: int | None = None
) -> str | None:
    """Start every resource, serve until a signal has drained the gateway, close everything
    (the ledger flushes last). The reason when a resource could not start, else None.
    `stop_when`: a descriptor whose readability starts the drain as a SIGTERM would (a
    worker's view of its parent process: readable once the parent is gone)."""
    runtime: Runtime = app.state.runtime
    loop = asyncio.get_running_loop()
    server = GracefulServer(config, runtime.drain, loop)
    # A SIGTERM while the resources start (a spool replayed, a slow database) must end in a
    # clean stop too: the server's own handler takes the signals from now on, and uvicorn
    # installs the same one, so no signal falls between the two. Before the server has
    # started it only marks the stop, and `serve` then returns at once.
    async with contextlib.AsyncExitStack() as resources:
        resources.enter_context(_stop_signals_to(server.handle_exit))
        try:
            await resources.enter_async_context(runtime.lifespan(app))
        except Exception as exc:  # noqa: BLE001 - any start-up failure ends as one line
            return describe(exc)
        if stop_when is not None:

            def stop() -> None:
                loop.remove_reader(stop_when)
                server.handle_exit(signal.SIGTERM, None)

            loop.add_reader(stop_when, stop)
            resources.callback(loop.remove_reader, stop_when)
        await server.serve(sockets=[sock])
    return None


def server_config(app: Litestar) -> uvicorn.Config:
    """uvicorn as the gateway runs it: httptools with the request-head limits of `[server]`
    (`proxy.http.protocol`), no WebSocket, the app's lifespan driven by `run`."""
    runtime: Runtime = app.state.runtime
    return uvicorn.Config(
        app.state.entry,  # the hot lane, in front of `app` (`proxy.http.lane`)
        http=guarded_protocol(runtime.settings.server),
        ws="none",  # no WebSocket route; also keeps uvicorn from loading websockets at all
        lifespan="off",  # `run` drives the app's lifespan itself, around uvicorn
        access_log=False,  # the gateway writes its own line per request
        # The gateway never reads the client address, and parsing X-Forwarded-For on every
        # request cost about 4% of the event loop under load.
        proxy_headers=False,
        log_level="warning",
        backlog=BACKLOG,
        # After the drain, what is left are the last bytes of finished answers.
        timeout_graceful_shutdown=FINAL_WRITES_S,
    )


def serve(app: Litestar, sock: socket.socket, *, stop_when: int | None = None) -> str | None:
    """Serve `app` on `sock` (uvloop, httptools); resources start and stop around uvicorn, so
    that a SIGTERM drains them while the socket still answers."""
    config = server_config(app)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(run(app, config, sock, stop_when))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (not on Windows), else asyncio's own loop."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
