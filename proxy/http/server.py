"""`warmgate serve`: the gateway on uvicorn (uvloop + httptools), from a TOML file or embedded.

Without `--config` it runs on embedded defaults so a new user talks to it within a minute: an
in-process SGLang simulator serving model `demo`, SQLite state under the data directory, and an
API key kept there (created on first start) that is printed with a copy-paste SDK snippet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import structlog
import uvicorn
from litestar import Litestar

from warmgate.proxy.http.app import Runtime, create_app
from warmgate.proxy.keys import Key, generate_key_id, generate_secret, hash_secret, open_key_store
from warmgate.proxy.settings import (
    DEFAULT_DATA_DIR,
    EMBEDDED_MODEL,
    Settings,
    SettingsError,
    embedded_settings,
    load_settings,
)

KEY_FILE = "api-key"
EMBEDDED_KEY_NAME = "embedded-default"
BACKLOG = 2048
# Once drained (or out of drain time), how long uvicorn waits for answers still being written.
FINAL_WRITES_S = 2
# `scheme://user:password@`: shown as `scheme://***@` in any error line.
CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def configure_logging() -> None:
    """JSON lines on stdout for every structlog logger of the process (health verdicts, key
    refreshes, ...), like the per-request lines. Process-wide, so done here, by the command."""
    encoder = msgspec.json.Encoder()

    def render(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
        return encoder.encode(event)

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            render,
        ],
        logger_factory=structlog.BytesLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="warmgate serve",
        description="Run the gateway. Without --config: a built-in simulator serving model "
        f"'{EMBEDDED_MODEL}', SQLite state under --data-dir, and a printed API key.",
    )
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--host", help="listen address (default: the file's, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: the file's, else 8080)")
    parser.add_argument("--data-dir", help=f"state directory (default: {DEFAULT_DATA_DIR})")
    return parser.parse_args(list(argv))


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


async def ensure_embedded_key(settings: Settings) -> str:
    """The embedded API key: read from the data directory, or created and stored there."""
    path = Path(settings.data_dir) / KEY_FILE
    secret = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    store = open_key_store(settings.ledger_url)
    await store.start()
    try:
        known = {digest for digest, _ in await store.load()}
        if not secret or hash_secret(secret) not in known:
            secret = generate_secret()
            key = Key(id=generate_key_id(), name=EMBEDDED_KEY_NAME, created_at=time.time())
            await store.insert(key, hash_secret(secret))
            path.write_text(secret + "\n", encoding="utf-8")
            path.chmod(0o600)
    finally:
        await store.close()
    return secret


def banner(url: str, secret: str, model: str) -> str:
    return f"""
Warmgate is serving on {url}  (model '{model}' on a built-in SGLang simulator)
API key: {secret}

    from openai import OpenAI
    client = OpenAI(base_url="{url}", api_key="{secret}")
    reply = client.chat.completions.create(
        model="{model}", messages=[{{"role": "user", "content": "Hello!"}}]
    )
    print(reply.choices[0].message.content)
"""


def start_simulator() -> tuple[list[str], Callable[[], None]]:
    """The embedded backend: one simulated SGLang replica in a thread of this process. Imported
    only here, by the command, so the gateway itself never depends on the simulator."""
    sim: Any = importlib.import_module("warmgate.backends.sim")
    config = sim.SimConfig(model=EMBEDDED_MODEL, enable_metrics=True, enable_cache_report=True)
    cluster = sim.SimCluster(config, replicas=1).start_in_thread()
    return list(cluster.urls), cluster.stop


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


async def run(app: Litestar, config: uvicorn.Config, sock: socket.socket) -> str | None:
    """Start every resource, serve until a signal has drained the gateway, close everything
    (the ledger flushes last). The reason when a resource could not start, else None."""
    runtime: Runtime = app.state.runtime
    server = GracefulServer(config, runtime.drain, asyncio.get_running_loop())
    async with contextlib.AsyncExitStack() as resources:
        try:
            await resources.enter_async_context(runtime.lifespan(app))
        except Exception as exc:  # noqa: BLE001 - any start-up failure ends as one line
            return describe(exc)
        await server.serve(sockets=[sock])
    return None


def serve(app: Litestar, sock: socket.socket) -> str | None:
    """Serve `app` on `sock` (uvloop, httptools); resources start and stop around uvicorn, so
    that a SIGTERM drains them while the socket still answers."""
    config = uvicorn.Config(
        app,
        http="httptools",
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
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(run(app, config, sock))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (not on Windows), else asyncio's own loop."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def prepare(args: argparse.Namespace) -> Settings:
    """The settings from the file (or the embedded defaults) and the command line."""
    settings = load_settings(args.config) if args.config else embedded_settings([])
    given = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    overrides = {name: value for name, value in given.items() if value is not None}
    if overrides:
        settings = msgspec.structs.replace(settings, **overrides)
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"cannot create data_dir {settings.data_dir}: {exc}") from exc
    return settings


def fail(message: str, status: int) -> int:
    """Print one line (no traceback, no credentials) and give the exit status."""
    shown = CREDENTIALS.sub(r"\1***@", message)
    print(f"warmgate serve: {shown}", file=sys.stderr)
    return status


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    configure_logging()
    try:
        settings = prepare(args)
    except SettingsError as exc:
        return fail(str(exc), 2)
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        return fail(f"cannot listen on {settings.host}:{settings.port}: {exc}", 1)
    stop_simulator: Callable[[], None] | None = None
    try:
        url = base_url(sock)
        if args.config:
            message = f"Warmgate is serving on {url}"
        else:
            urls, stop_simulator = start_simulator()
            settings = embedded_settings(
                urls, host=settings.host, port=settings.port, data_dir=settings.data_dir
            )
            secret = asyncio.run(ensure_embedded_key(settings))
            message = banner(url, secret, EMBEDDED_MODEL)

        def on_started() -> None:
            print(message, flush=True)

        try:
            app = create_app(settings, on_started=on_started)
        except ValueError as exc:  # what the settings declare cannot be built
            return fail(f"{args.config or 'settings'}: {exc}", 2)
        failure = serve(app, sock)
        if failure is not None:
            return fail(f"cannot start: {failure}", 1)
    finally:
        sock.close()
        if stop_simulator is not None:
            stop_simulator()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
