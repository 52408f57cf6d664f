"""`warmgate serve --workers N`: N processes serving one port, pre-forked from one parent.

The parent binds the listening socket (as a single process does) and starts N workers with
multiprocessing's `spawn` (a fresh interpreter each: no state or thread of the parent, such as
the embedded simulator, is copied). Each worker inherits the socket and serves it with its own
event loop and its own resources (`Runtime`); the kernel hands each connection to whichever
worker accepts it first. A socket per worker with SO_REUSEPORT was the alternative; it was not
taken because connections already queued on a worker's socket are reset when that worker
stops or dies, while with one shared socket they wait for the other workers, and because the
port is bound once, before any worker starts, as `--port 0` and the printed URL need.

What the workers share goes through the stores, as between edges: keys (each worker refreshes
them from the key store), the ledger (SQLite in WAL mode or PostgreSQL; a request's row is
written by the worker that served it, once), limits (exact across workers with Redis).
`/metrics` merges every worker's figures (`proxy.observability.edge`).

Signals: workers run in a process group of their own, so a SIGTERM or Ctrl+C reaches the
parent alone, which passes SIGTERM on to each worker exactly once: each drains as a single
process does, and the parent exits 0 once all have. A second signal is passed on too (stop
waiting). A worker that dies after it started serving is restarted in its seat (a crash loop,
more than `MAX_RESTARTS` in `RESTART_WINDOW_S`, stops the edge instead); one that cannot start
stops the edge with its reason, since its siblings would fail the same way. A worker whose
parent is gone (SIGKILL) drains and exits by itself.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import structlog

from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.server import describe, serve
from warmgate.proxy.keys import open_key_store
from warmgate.proxy.ledger import open_ledger_store
from warmgate.proxy.observability.edge import WorkerSeat
from warmgate.proxy.observability.logs import configure_logging, log_level
from warmgate.proxy.settings import Settings

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
STARTED = "started"

_log = structlog.get_logger("warmgate.workers")


def worker_count(configured: int) -> int:
    """`[server] workers` as a number of processes: 0 means one per CPU this process may use."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


async def prepare_stores(settings: Settings) -> None:
    """Create or migrate the key and ledger stores once, in the parent, before the workers
    open them all at once (and fail here, in one line, if a store cannot be reached)."""
    keys = open_key_store(settings.ledger_url)
    await keys.start()
    await keys.close()
    if settings.ledger.enabled:
        ledger = open_ledger_store(settings.ledger_url)
        await ledger.start()
        await ledger.close()


def run_worker(
    settings: Settings, sock: socket.socket, seat: WorkerSeat, report: Connection
) -> None:
    """A worker process: serve `sock` until drained; tell the parent when serving and why it
    could not start. Runs in a fresh interpreter (multiprocessing's spawn)."""
    os.setpgid(0, 0)  # signals reach the parent alone, which passes them on once
    configure_logging(log_level(settings.server.log_level))
    parent = multiprocessing.parent_process()
    try:
        app = create_app(settings, worker=seat, on_started=lambda: report.send(STARTED))
        failure = serve(app, sock, stop_when=None if parent is None else parent.sentinel)
    except Exception as exc:  # noqa: BLE001 - the parent prints it as one line
        failure = describe(exc)
    if failure is not None:
        report.send(failure)
        raise SystemExit(1)


@dataclass
class _Seat:
    seat: WorkerSeat
    process: BaseProcess
    report: Connection
    started: bool = False
    failure: str | None = None


class Supervisor:
    """The parent of the workers: starts them, passes signals on, restarts a worker that died,
    and returns once every worker has exited."""

    def __init__(
        self,
        settings: Settings,
        sock: socket.socket,
        workers: int,
        *,
        on_started: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._sock = sock
        self._workers = workers
        self._on_started = on_started
        self._clock = clock
        self._context = multiprocessing.get_context("spawn")
        self._seats: dict[int, _Seat] = {}
        self._restarts: deque[float] = deque()
        self._stopping = False
        self._failure: str | None = None
        self._announced = False

    def run(self) -> str | None:
        """Serve until a signal has drained every worker: None, or why the edge stopped."""
        with tempfile.TemporaryDirectory(prefix="warmgate-") as socket_dir:
            os.chmod(socket_dir, 0o700)  # the metrics sockets: this user's processes only
            return asyncio.run(self._run(socket_dir))

    async def _run(self, socket_dir: str) -> str | None:
        loop = asyncio.get_running_loop()
        self._all_exited = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop)
        for number in range(self._workers):
            self._start(WorkerSeat(number, self._workers, socket_dir))
        await self._all_exited.wait()
        return self._failure

    def _start(self, seat: WorkerSeat) -> None:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_worker,
            args=(self._settings, self._sock, seat, send),
            name=f"warmgate-worker-{seat.number}",
        )
        process.start()
        send.close()  # the worker holds the sending end: the pipe ends when it exits
        entry = _Seat(seat, process, receive)
        self._seats[seat.number] = entry
        loop = asyncio.get_running_loop()
        loop.add_reader(receive.fileno(), self._on_report, entry)
        loop.add_reader(process.sentinel, self._on_exit, entry)

    def _on_report(self, entry: _Seat) -> bool:
        """Read one message of the worker; False once it has no more to say."""
        try:
            message = entry.report.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(entry.report.fileno())
            return False
        if message != STARTED:
            entry.failure = str(message)
            return True
        entry.started = True
        _log.info("worker_started", worker=entry.seat.number, pid=entry.process.pid)
        if not self._announced and all(seat.started for seat in self._seats.values()):
            self._announced = True
            if not self._stopping and self._on_started is not None:
                self._on_started()
        return True

    def _on_exit(self, entry: _Seat) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(entry.process.sentinel)
        entry.process.join()
        while entry.report.poll() and self._on_report(entry):
            pass  # what it said before it went: its failure, if any
        loop.remove_reader(entry.report.fileno())
        entry.report.close()
        del self._seats[entry.seat.number]
        status = entry.process.exitcode
        if self._stopping:
            _log.info("worker_stopped", worker=entry.seat.number, status=status)
        elif not entry.started:
            self._stop_with(
                entry.failure or f"worker {entry.seat.number} exited with status {status}"
            )
        elif self._restart_allowed():
            _log.warning("worker_restarted", worker=entry.seat.number, status=status)
            self._start(entry.seat)
        else:
            self._stop_with(
                f"workers exited {MAX_RESTARTS} times within {RESTART_WINDOW_S:.0f} s "
                f"(last: worker {entry.seat.number}, status {status})"
            )
        if not self._seats:
            self._all_exited.set()

    def _restart_allowed(self) -> bool:
        now = self._clock()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW_S:
            self._restarts.popleft()
        if len(self._restarts) >= MAX_RESTARTS:
            return False
        self._restarts.append(now)
        return True

    def _stop_with(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
        self._stop()

    def _stop(self) -> None:
        """Every worker drains: SIGTERM to each, once for each signal the parent got."""
        self._stopping = True
        for entry in self._seats.values():
            if entry.process.pid is not None and entry.process.is_alive():
                os.kill(entry.process.pid, signal.SIGTERM)
