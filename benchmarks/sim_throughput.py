"""How many tiny non-streamed chat requests per second one simulator core serves at time_scale 0.

The simulator runs as its own process (`warmgate sim`), pinned to one CPU core; the load
generator runs here, in one or more other processes (aiohttp clients on keep-alive
connections, a fixed number of requests in flight). Besides wall-clock requests/s it reports the
simulator's own CPU seconds (from /proc), so `requests per simulator CPU-second` stays meaningful
on a shared machine where the load generator competes for cores.

    .venv/bin/python -m benchmarks.sim_throughput --duration 10 --concurrency 64 --load-processes 2

`--streams N` then also holds N concurrent real-time streams (time_scale 1) and reports the
simulator's CPU per streamed event and the inter-token gap clients see against the model's.

Writes a JSON result to benchmarks/results/sim_throughput.json (or --output).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

BODY = json.dumps(
    {"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_ready(url: str, deadline_s: float) -> None:
    """Poll /health until the simulator process accepts connections (it is another process)."""
    end = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/health") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                if time.monotonic() > end:
                    raise
            await asyncio.sleep(0.05)


async def drive(url: str, concurrency: int, duration_s: float) -> list[float]:
    """Keep `concurrency` requests in flight for `duration_s`; return each latency (s)."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:
        end = time.monotonic() + duration_s

        async def worker() -> None:
            while time.monotonic() < end:
                start = time.monotonic()
                async with session.post(url, data=BODY, headers=headers) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"status {reply.status}")
                latencies.append(time.monotonic() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def load_process(url: str, concurrency: int, duration_s: float, out: Any) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up for the load generator

        latencies = uvloop.run(drive(url, concurrency, duration_s))
    except ImportError:
        latencies = asyncio.run(drive(url, concurrency, duration_s))
    out.send(latencies)
    out.close()


@contextlib.contextmanager
def running_simulator(time_scale: str, core: int) -> Iterator[tuple[str, int]]:
    """`warmgate sim` on a free port, pinned to `core`, once it answers; its base URL and pid."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "warmgate.proxy.cli",
        "sim",
        "--port",
        str(port),
        "--time-scale",
        time_scale,
        "--model",
        "demo",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(server.pid, {core})
        asyncio.run(wait_ready(base, 30.0))
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def fan_out(target: Callable[..., None], args: tuple[Any, ...], processes: int) -> list[Any]:
    """Runs `target(*args, sender)` in `processes` processes at once; what each sent back
    through `sender`, once all have ended."""
    pipes, workers = [], []
    for _ in range(processes):
        receiver, sender = multiprocessing.Pipe(duplex=False)
        worker = multiprocessing.Process(target=target, args=(*args, sender))
        worker.start()
        pipes.append(receiver)
        workers.append(worker)
    results = [pipe.recv() for pipe in pipes]
    for worker in workers:
        worker.join()
    return results


async def hold_streams(url: str, streams: int, tokens: int) -> tuple[int, list[float]]:
    """`streams` concurrent streamed chats of `tokens` tokens; events received, per-stream
    mean gap between content events (s)."""
    body = json.dumps(
        {
            "model": "demo",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": tokens,
            "ignore_eos": True,
            "stream": True,
        }
    ).encode()
    connector = aiohttp.TCPConnector(limit=streams)
    timeout = aiohttp.ClientTimeout(total=None)
    events = 0
    gaps: list[float] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            nonlocal events
            headers = {"Content-Type": "application/json"}
            stamps: list[float] = []
            async with session.post(url, data=body, headers=headers) as reply:
                async for line in reply.content:
                    if line.startswith(b"data: {") and b'"content":"' in line:
                        stamps.append(time.monotonic())
                        events += 1
            if len(stamps) > 2:
                gaps.append((stamps[-1] - stamps[1]) / (len(stamps) - 2))

        await asyncio.gather(*(one() for _ in range(streams)))
    return events, gaps


def stream_process(url: str, streams: int, tokens: int, out: Any) -> None:
    out.send(asyncio.run(hold_streams(url, streams, tokens)))
    out.close()


def run_streams(args: argparse.Namespace) -> dict[str, Any]:
    """Many concurrent streams in real time: the simulator's CPU per streamed token."""
    per_process = max(1, args.streams // args.load_processes)
    with running_simulator("1", args.core) as (base, pid):
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        url = base + "/v1/chat/completions"
        sent = fan_out(stream_process, (url, per_process, args.stream_tokens), args.load_processes)
        wall = time.monotonic() - wall_before
        cpu = cpu_seconds(pid) - cpu_before
    events = sum(got_events for got_events, _ in sent)
    gaps = [gap for _, got_gaps in sent for gap in got_gaps]
    return {
        "streams": per_process * args.load_processes,
        "stream_tokens": args.stream_tokens,
        "stream_events": events,
        "stream_duration_s": round(wall, 3),
        "stream_simulator_cpu_share": round(cpu / wall, 3),
        "stream_simulator_cpu_us_per_event": round(1e6 * cpu / events, 1) if events else None,
        "stream_itl_ms_mean": round(1000 * statistics.mean(gaps), 2) if gaps else None,
        "stream_itl_ms_model": round(
            1000 * (0.012 + 0.00008 * per_process * args.load_processes), 2
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    per_process = max(1, args.concurrency // args.load_processes)
    with running_simulator("0", args.core) as (base, pid):
        url = base + "/v1/chat/completions"
        asyncio.run(drive(url, args.concurrency, 1.0))  # warm-up
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        sent = fan_out(load_process, (url, per_process, args.duration), args.load_processes)
        wall = time.monotonic() - wall_before
        cpu = cpu_seconds(pid) - cpu_before
    latencies = sorted(value for values in sent for value in values)
    return {
        "benchmark": "sim_throughput",
        "requests": len(latencies),
        "duration_s": round(wall, 3),
        "concurrency": args.concurrency,
        "load_processes": args.load_processes,
        "requests_per_s": round(len(latencies) / wall, 1),
        "simulator_cpu_s": round(cpu, 3),
        "simulator_cpu_share": round(cpu / wall, 3),
        "requests_per_simulator_cpu_s": round(len(latencies) / cpu, 1) if cpu else None,
        "latency_ms_p50": round(1000 * statistics.median(latencies), 3),
        "latency_ms_p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 3),
        "cpu_count": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--load-processes", type=int, default=1)
    parser.add_argument("--core", type=int, default=0, help="CPU core the simulator is pinned to")
    parser.add_argument("--streams", type=int, default=0, help="also hold N concurrent streams")
    parser.add_argument("--stream-tokens", type=int, default=200)
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/sim_throughput.json")
    )
    args = parser.parse_args()
    result = run(args)
    if args.streams:
        result |= run_streams(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
