"""The metrics of a whole edge, whichever of its workers a scrape reaches.

Each worker keeps its own counters (no lock, no shared memory on the request path) and serves
a snapshot of them on a Unix socket of its own, in a private folder the parent process made.
The worker that receives `GET /metrics` asks every other worker for its snapshot, merges them
with its own (`exposition.merge`: counters and histograms summed, gauges kept per worker) and
renders the result. A worker that does not answer within `timeout_s` (it is restarting) is
left out of that scrape, and `warmgate_edge_workers_scraped` says how many answered. A
restarted worker starts its counters from zero, as any restarted process does; Prometheus
reads the drop as a counter reset.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import NamedTuple

import msgspec

from warmgate.proxy.observability.exposition import (
    FamilyData,
    SampleData,
    cut_top_keys,
    decode_snapshot,
    encode_snapshot,
    merge,
    render_families,
)
from warmgate.proxy.observability.metrics import Metrics

SNAPSHOT_TIMEOUT_S = 2.0


class WorkerSeat(NamedTuple):
    """A worker's place in its edge: its number among `workers` processes, and the private
    folder where their metrics sockets live (None for a single process)."""

    number: int = 0
    workers: int = 1
    socket_dir: str | None = None

    def socket_path(self, index: int) -> Path:
        assert self.socket_dir is not None
        return Path(self.socket_dir) / f"metrics-{index}.sock"


SINGLE = WorkerSeat()


class EdgeMetrics:
    def __init__(
        self, metrics: Metrics, seat: WorkerSeat = SINGLE, *, timeout_s: float = SNAPSHOT_TIMEOUT_S
    ) -> None:
        self._metrics = metrics
        self._seat = seat
        self._timeout_s = timeout_s
        self._server: asyncio.Server | None = None
        self._worker_label = str(seat.number) if seat.workers > 1 else None

    @property
    def shared(self) -> bool:
        return self._seat.workers > 1 and self._seat.socket_dir is not None

    async def start(self) -> None:
        if self.shared:
            path = self._seat.socket_path(self._seat.number)
            path.unlink(missing_ok=True)  # a previous worker in this seat died
            self._server = await asyncio.start_unix_server(self._send_snapshot, path=path)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
            self._seat.socket_path(self._seat.number).unlink(missing_ok=True)

    def snapshot(self) -> list[FamilyData]:
        return self._metrics.snapshot(worker=self._worker_label)

    async def render(self) -> str:
        """The edge's metrics in the text format: this worker's merged with the others'."""
        own = self.snapshot()
        if not self.shared:
            return render_families(cut_top_keys(own, self._metrics.top_keys))
        others = [index for index in range(self._seat.workers) if index != self._seat.number]
        fetched = await asyncio.gather(*(self._fetch(index) for index in others))
        answered = [snapshot for snapshot in fetched if snapshot is not None]
        merged = merge([own, *answered])
        merged.append(
            FamilyData(
                "warmgate_edge_workers_scraped",
                "Workers of this edge whose figures this scrape includes.",
                "gauge",
                [SampleData("", (), float(1 + len(answered)))],
            )
        )
        return render_families(cut_top_keys(merged, self._metrics.top_keys))

    async def _send_snapshot(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            writer.write(encode_snapshot(self.snapshot()))
            await writer.drain()
        except OSError:
            pass  # the scraping worker gave up; it scrapes without us
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _fetch(self, index: int) -> list[FamilyData] | None:
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                reader, writer = await asyncio.open_unix_connection(self._seat.socket_path(index))
                return decode_snapshot(await reader.read())
        except (OSError, TimeoutError, msgspec.DecodeError):
            return None
        finally:
            if writer is not None:
                writer.close()
