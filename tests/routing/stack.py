"""Simulator replicas and the gateway in the test's own event loop, on real loopback ports.

Everything shares one loop, so a test can await the pool's change notifications directly
(`wait_for`) instead of sleeping, and flip faults on a replica in-process.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import openai
import uvicorn
from openai import AsyncOpenAI

from tests.support.gateway import uvicorn_config
from warmgate.backends.sim import SimCluster, SimConfig
from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.server import base_url, bind
from warmgate.proxy.routing.pool import Pool
from warmgate.proxy.runtime import Runtime
from warmgate.proxy.settings import (
    AuthSettings,
    BackendSettings,
    HealthSettings,
    LedgerSettings,
    LimitsSettings,
    ModelSettings,
    Policy,
    RoutingSettings,
    ServerSettings,
    Settings,
    StaticKeySettings,
    UpstreamSettings,
)

API_KEY = "sk-routing-test-key"
ADMIN_KEY = "sk-routing-admin-key"
ENVIRON = {"ROUTING_TEST_KEY": API_KEY, "ROUTING_ADMIN_KEY": ADMIN_KEY}
MODEL = "demo"


def sim_config(**changes: object) -> SimConfig:
    fields: dict[str, object] = {"time_scale": 0.0, "enable_cache_report": True, **changes}
    return SimConfig(model=MODEL, **fields)  # type: ignore[arg-type]


def gateway_settings(
    urls: list[str],
    data_dir: Path,
    *,
    policy: Policy = "cache_aware",
    health: HealthSettings | None = None,
    routing: RoutingSettings | None = None,
    max_attempts: int = 3,
) -> Settings:
    return Settings(
        data_dir=str(data_dir),
        models=[
            ModelSettings(
                name=MODEL,
                policy=policy,
                backends=[BackendSettings(url=url) for url in urls],
            )
        ],
        keys=[StaticKeySettings(name="routing-test", secret_env="ROUTING_TEST_KEY")],
        auth=AuthSettings(admin_key_env="ROUTING_ADMIN_KEY"),
        limits=LimitsSettings(enabled=False),
        ledger=LedgerSettings(enabled=False),
        server=ServerSettings(access_log=True),
        upstream=UpstreamSettings(max_attempts=max_attempts),
        health=health or HealthSettings(interval_s=3600.0),
        routing=routing or RoutingSettings(load_poll_interval_s=0),
    )


@dataclass
class Gateway:
    base_url: str
    root: str
    pool: Pool
    client: AsyncOpenAI
    log: io.BytesIO
    runtime: Runtime

    def backends_by_request(self) -> dict[str, str]:
        """Request id -> backend id, from the gateway's per-request log lines."""
        self.runtime.log.flush()  # lines are buffered off the request path
        found: dict[str, str] = {}
        for line in self.log.getvalue().splitlines():
            record = json.loads(line)
            if record.get("request_id") and record.get("backend"):
                found[record["request_id"]] = record["backend"]
        return found

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
        """Wait until `condition()` holds, woken by each pool change (probe rounds included)."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                await self.pool.next_change()


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    started = asyncio.Event()
    log = io.BytesIO()
    app = create_app(settings, environ=ENVIRON, on_started=started.set, log_sink=log)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn_config(app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            done, _ = await asyncio.wait(
                [task, asyncio.ensure_future(started.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        if task in done:
            task.result()  # the server failed to start: raise its error
        url = base_url(sock)
        client = AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0, timeout=60.0)
        try:
            runtime: Runtime = app.state.runtime
            yield Gateway(url, url.removesuffix("/v1"), runtime.pool, client, log, runtime)
        finally:
            await client.close()
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def sim_cluster(replicas: int, **config: object) -> AsyncIterator[SimCluster]:
    async with SimCluster(sim_config(**config), replicas=replicas) as cluster:
        yield cluster


class ClientLoad:
    """`workers` clients sending chat requests without pause, from entry until `stop()` (or
    the exit): the ids of the answers in the order they came, and every error."""

    def __init__(self, gateway: Gateway, workers: int = 6, *, max_tokens: int = 2) -> None:
        self._gateway = gateway
        self._workers = workers
        self._max_tokens = max_tokens
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.answers: list[str] = []
        self.errors: list[BaseException] = []

    async def __aenter__(self) -> Self:
        self._tasks = [asyncio.create_task(self._send(w)) for w in range(self._workers)]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.stop()
        await asyncio.gather(*self._tasks)

    def stop(self) -> None:
        self._stop.set()

    async def _send(self, worker: int) -> None:
        turn = 0
        while not self._stop.is_set():
            turn += 1
            try:
                reply = await self._gateway.client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"worker {worker} turn {turn}"}],
                    max_tokens=self._max_tokens,
                )
                self.answers.append(reply.id)
            except openai.APIError as error:
                self.errors.append(error)


class LoopbackRelay:
    """A loopback TCP relay in front of a backend. Each chunk a client sends goes through
    `passes` first, where a subclass watches requests in flight or cuts them."""

    def __init__(self, target_url: str) -> None:
        host, _, port = target_url.removeprefix("http://").partition(":")
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    def passes(
        self, data: bytes, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> bool:
        """Whether a chunk the client sent goes on (False: the relay of it ends here)."""
        return True

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        for pipe in (
            self._pipe(reader, upstream_writer, client=writer),
            self._pipe(upstream_reader, writer),
        ):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        client: asyncio.StreamWriter | None = None,
    ) -> None:
        """Copy `source` to `sink`; `client` is set on the client-to-backend direction."""
        try:
            while data := await source.read(65536):
                if client is not None and not self.passes(data, client, sink):
                    return
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()


class Tap(LoopbackRelay):
    """Fires `reached` once clients have sent `threshold` bytes through it: a test waits on it
    to act while a large request is in flight."""

    def __init__(self, target_url: str, threshold: int) -> None:
        super().__init__(target_url)
        self._threshold = threshold
        self._sent = 0
        self.reached = asyncio.Event()

    def passes(
        self, data: bytes, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> bool:
        self._sent += len(data)
        if self._sent >= self._threshold:
            self.reached.set()
        return True
