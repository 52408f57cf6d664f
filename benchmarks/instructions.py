"""Instructions per request: the gateway's CPU cost counted, not timed.

CPU time per request (`benchmarks.overhead`) moves by ±10% from run to run on a shared
machine. This counts what the gateway process executes for a fixed number of requests under
valgrind's callgrind, which repeats to within a few percent whatever else the machine does
(a garbage collection or a timer landing inside the window is the rest). Use it to compare two
builds of the hot path: run it in each checkout and compare the figures, same options.

Method: `warmgate serve` over the canned upstream, started under `valgrind --tool=callgrind
--instr-atstart=no` with a fixed hash seed; warm-up requests first (imports, caches, the first
connections); then for each mode the counters are zeroed, instrumentation switched on for
exactly `--requests` sequential requests from this process, switched off, and the counts
dumped. The figure is the dumped total divided by the requests. Valgrind slows the server about
fifty-fold: the default 300 requests per mode take about a minute.

    python -m benchmarks.instructions                 # needs valgrind (Debian: valgrind)
    python -m benchmarks.instructions --requests 1000 --name instructions-main
    python -m benchmarks.instructions --keep-dumps /tmp/cg   # then: callgrind_annotate /tmp/cg/*
    python -m benchmarks.instructions --baseline ../old/.venv/bin/warmgate   # before and after

With `--baseline`, another build's `warmgate` command (a checkout of an earlier commit in its own
venv) is measured the same way just before this one, and the ratio is reported per mode.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from benchmarks.gateway import BENCH_KEY, BENCH_KEY_ENV, config_text
from benchmarks.processes import ServerProcess, free_port
from benchmarks.progress import CellCounter
from benchmarks.report import command_line, machine, markdown_table, print_written, write_results
from benchmarks.upstreams import canned_process

MODEL = "demo"
# A connection per request (each request pays for accepting and closing one), and requests on
# one kept-alive connection, as clients with a connection pool (the OpenAI SDKs) send them.
KEPT = ", kept-alive"
MODES = ("non-stream", "stream", "non-stream" + KEPT, "stream" + KEPT)
RESULTS = Path(__file__).parent / "results"
_TOTALS = re.compile(rb"^totals: (\d+)", re.MULTILINE)


def request_body(stream: bool) -> bytes:
    return msgspec.json.encode(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Hello there, how are you today?"}],
            "stream": stream,
        }
    )


HEADERS = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}


def send(base_url: str, stream: bool) -> None:
    """One request on a connection of its own, read to its end (the stream's too)."""
    request = urllib.request.Request(  # noqa: S310  # loopback URL built here
        base_url + "/v1/chat/completions", data=request_body(stream), headers=HEADERS
    )
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
        answer.read()


def send_kept(connection: http.client.HTTPConnection, stream: bool) -> None:
    """One request on a kept-alive connection (as the SDKs' pools send them)."""
    connection.request("POST", "/v1/chat/completions", body=request_body(stream), headers=HEADERS)
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        raise RuntimeError(f"status {answer.status}")


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def count(pid: int, out: Path, base_url: str, *, mode: str, requests: int) -> int:
    """Instructions the gateway executed for `requests` requests of one mode."""
    stream = mode.startswith("stream")
    kept = mode.endswith(KEPT)
    connection = http.client.HTTPConnection(urlsplit(base_url).netloc, timeout=120)
    control(pid, "--zero")
    control(pid, "--instr=on")
    for _ in range(requests):
        if kept:
            send_kept(connection, stream)
        else:
            send(base_url, stream)
    control(pid, "--instr=off")
    connection.close()
    control(pid, f"--dump={mode.replace(' ', '-')}")
    dumps = sorted(out.parent.glob(out.name + ".*"), key=lambda path: path.stat().st_mtime)
    match = _TOTALS.search(dumps[-1].read_bytes())
    if match is None:
        raise RuntimeError(f"no totals in {dumps[-1]}")
    return int(match.group(1))


def measure(
    requests: int, warmup: int, workdir: Path, command: Sequence[str] | None = None
) -> dict[str, float]:
    """Instructions per request for each mode, of this checkout's gateway or of `command`
    (another build's `warmgate`)."""
    upstream_port, gateway_port = free_port(), free_port()
    out = workdir / "callgrind.out"
    config = workdir / "warmgate.toml"
    config.write_text(
        config_text(
            port=gateway_port,
            data_dir=workdir / "data",
            model=MODEL,
            backends=[f"http://127.0.0.1:{upstream_port}"],
        )
        + "\n[health]\ninterval_s = 3600\n\n[routing]\nload_poll_interval_s = 0\n"
    )
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        *(command or (sys.executable, "-m", "warmgate.proxy.cli")),
        "serve",
        "--config",
        str(config),
    ]
    env = {BENCH_KEY_ENV: BENCH_KEY, "PYTHONHASHSEED": "0"}
    base_url = f"http://127.0.0.1:{gateway_port}"
    counter = CellCounter("instructions", [1.0] * len(MODES))
    upstream = canned_process(workdir, port=upstream_port, model=MODEL, cpus=None)
    gateway = ServerProcess("warmgate", argv, cpus=None, log_path=workdir / "warmgate.log", env=env)
    figures: dict[str, float] = {}
    with upstream, gateway:
        upstream.wait_until(f"http://127.0.0.1:{upstream_port}/health")
        gateway.wait_until(base_url + "/health", timeout_s=600)
        for _ in range(warmup):
            send(base_url, stream=False)
            send(base_url, stream=True)
        for mode in MODES:
            counter.start(mode)
            total = count(gateway.pid, out, base_url, mode=mode, requests=requests)
            figures[mode] = total / requests
            counter.finish()
    counter.close()
    return figures


def render(doc: Any) -> str:
    figures = doc["instructions_per_request"]
    baseline = doc.get("baseline_instructions_per_request")
    if baseline is None:
        header = ["mode", "million instructions per request"]
        rows = [[mode, f"{figures[mode] / 1e6:.3f}"] for mode in figures]
    else:
        header = ["mode", "this build (M)", "--baseline build (M)", "this ÷ baseline"]
        rows = [
            [
                mode,
                f"{figures[mode] / 1e6:.3f}",
                f"{baseline[mode] / 1e6:.3f}",
                f"{figures[mode] / baseline[mode]:.3f}",
            ]
            for mode in figures
        ]
    return "\n".join(
        [
            "# Instructions per request",
            "",
            f"`{doc['command']}`: {doc['requests']} sequential requests per mode through "
            "`warmgate serve` over the canned upstream, counted by callgrind.",
            "",
            markdown_table(header, rows),
            "",
            "Without `kept-alive`, each request opens and closes a connection of its own.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="requests counted per mode")
    parser.add_argument("--warmup", type=int, default=100, help="requests per mode before")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="instructions")
    parser.add_argument(
        "--baseline",
        metavar="WARMGATE",
        help="another build's `warmgate` command, measured the same way before this one",
    )
    parser.add_argument(
        "--keep-dumps",
        type=Path,
        default=None,
        help="copy callgrind's dumps here, to see where the instructions go (callgrind_annotate)",
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("benchmarks.instructions: valgrind is not installed", file=sys.stderr)
        return 1
    if args.baseline is not None and shutil.which(args.baseline) is None:
        print(f"benchmarks.instructions: no such command: {args.baseline}", file=sys.stderr)
        return 1
    baseline = None
    if args.baseline is not None:
        with tempfile.TemporaryDirectory(prefix="warmgate-instructions-") as folder:
            baseline = measure(args.requests, args.warmup, Path(folder), [args.baseline])
    with tempfile.TemporaryDirectory(prefix="warmgate-instructions-") as folder:
        figures = measure(args.requests, args.warmup, Path(folder))
        if args.keep_dumps is not None:
            args.keep_dumps.mkdir(parents=True, exist_ok=True)
            for dump in Path(folder).glob("callgrind.out.*"):
                shutil.copy2(dump, args.keep_dumps / dump.name)
    doc = {
        "benchmark": "instructions",
        "command": command_line("instructions", argv),
        "machine": machine(),
        "requests": args.requests,
        "instructions_per_request": figures,
    }
    if baseline is not None:
        doc["baseline_instructions_per_request"] = baseline
    args.out.mkdir(parents=True, exist_ok=True)
    paths = write_results(args.out, args.name, doc, render)
    print(render(doc))
    print_written(paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
