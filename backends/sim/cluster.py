"""N independent replicas in one process: in the running event loop, or in a daemon thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import msgspec

from warmgate.backends.sim.config import SimConfig
from warmgate.backends.sim.faults import Faults
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.server import build_app


class SimCluster:
    """Replicas on consecutive ports from `port` (or each on a free port when `port` is 0).

    `network_delay_ms`, one value per replica, overrides the config's delay replica by replica,
    so one cluster can stand for replicas in two regions."""

    def __init__(
        self,
        config: SimConfig,
        replicas: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        network_delay_ms: Sequence[float] | None = None,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be >= 1")
        delays = [config.network_delay_ms] * replicas
        if network_delay_ms is not None:
            if len(network_delay_ms) != replicas:
                raise ValueError("network_delay_ms needs one value per replica")
            delays = [float(delay) for delay in network_delay_ms]
        if any(delay < 0 for delay in delays):
            raise ValueError("network delays must be >= 0")
        self.config = config
        self.host = host
        self.port = port
        self.replicas = [
            Replica(msgspec.structs.replace(config, network_delay_ms=delay), index)
            for index, delay in enumerate(delays)
        ]
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def urls(self) -> list[str]:
        return [replica.url for replica in self.replicas]

    async def start(self) -> None:
        """Bind and serve every replica; if one cannot (a port in use), stop those started."""
        try:
            for index, replica in enumerate(self.replicas):
                port = self.port + index if self.port else 0
                await replica.start(build_app(replica), self.host, port)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.stop()

    def start_draining(self) -> None:
        """Health answers 503 from now on (the first, synchronous half of `drain`)."""
        for replica in self.replicas:
            replica.draining = True

    async def drain(self) -> None:
        """SIGTERM behaviour: health answers 503, new requests are still served, and this
        returns once nothing is running or waiting."""
        self.start_draining()
        for replica in self.replicas:
            await replica.scheduler.wait_until(lambda scheduler: not scheduler.busy)

    async def __aenter__(self) -> SimCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- threaded use (sync tests, embedding in a sync program)
    def start_in_thread(self) -> SimCluster:
        """Serve from a daemon thread with its own event loop; returns once ports are bound."""
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve_until_stopped(started))
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                started.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="warmgate-sim", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    async def _serve_until_stopped(self, started: threading.Event) -> None:
        self._stopped = asyncio.Event()
        await self.start()
        started.set()
        try:
            await self._stopped.wait()
        finally:
            await self.close()

    def set_faults_from_thread(self, index: int, **changes: Any) -> Faults:
        """`replicas[index].set_faults(...)` for a cluster started with start_in_thread."""
        if self._loop is None:
            raise RuntimeError("the cluster was not started with start_in_thread")
        coroutine = self.replicas[index].set_faults(**changes)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self) -> None:
        """Stop a cluster started with start_in_thread and wait for its thread."""
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is None or stopped is None or thread is None:
            return
        loop.call_soon_threadsafe(stopped.set)
        thread.join()
        self._thread = None
