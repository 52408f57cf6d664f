"""A wedged replica under load: SIGSTOP one of three simulated SGLang replicas behind one
`warmgate serve` while 30 clients send requests without pause (every other one streamed).

A stopped process still accepts connections (the kernel completes the handshake) and never
answers; its probes time out behind requests in flight and are excused as busy. The gateway's
first-byte budget ([upstream] first_byte_timeout_s) abandons each attempt that sends nothing in
time and retries it elsewhere; consecutive timeouts eject the replica as an outlier.

Measured: normal throughput; after the SIGSTOP, when the replica left the pool (polled from
/metrics) against 3 x the budget, when throughput was back above 80 % of normal (the first
sliding 1 s window at that rate) against 10 s, and the longest client wait against the budget
plus one retry; client errors; after SIGCONT, when passing probes readmitted it. One retry is
what an answer took on the replicas left: the slowest answer to a request sent after the
ejection (the remaining replicas carry the whole load then, and the retries of the stalled
requests arrive at once), or the slowest normal answer when that was slower.

    python -m benchmarks.wedge            # ~40 s
    python -m benchmarks.wedge --quick    # ~25 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI

from benchmarks import report
from benchmarks.gateway import BENCH_KEY, BENCH_KEY_ENV, REPO_ROOT
from benchmarks.processes import ServerProcess, free_port, free_port_range
from benchmarks.upstreams import sim_process

MODEL = "demo"
REPLICAS = 3
WINDOW_S = 1.0  # throughput is counted over sliding windows this long
POLL_S = 0.05  # how often /metrics is read for the victim's health


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wedge", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter phases: ~25 s")
    parser.add_argument("--workers", type=int, default=30, help="concurrent clients")
    parser.add_argument("--budget-s", type=float, default=1.0, help="first-byte budget")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR, help="results folder")
    return parser.parse_args(argv)


def gateway_config(port: int, data_dir: Path, budget_s: float, backends: Sequence[str]) -> str:
    lines = [
        'host = "127.0.0.1"',
        f"port = {port}",
        f'data_dir = "{data_dir}"',
        "[server]",
        "access_log = false",
        "[limits]",
        "enabled = false",
        "[upstream]",
        f"first_byte_timeout_s = {budget_s}",
        f"answer_timeout_s = {budget_s}",
        "[routing]",
        "load_poll_interval_s = 0.0",
        "[health]",  # the defaults: /health_generate every 10 s, busy_grace_s 300
        "interval_s = 2.0",
        "[[models]]",
        f'name = "{MODEL}"',
        'price_per_request = "0.001"',
    ]
    for url in backends:
        lines += ["[[models.backends]]", f'url = "{url}"']
    lines += ["[[keys]]", 'name = "wedge"', f'secret_env = "{BENCH_KEY_ENV}"']
    return "\n".join(lines) + "\n"


class Tally:
    def __init__(self) -> None:
        self.done: list[tuple[float, float]] = []  # (finished at, latency), monotonic seconds
        self.errors: Counter[str] = Counter()


async def client(base_url: str, tally: Tally, stop: asyncio.Event, index: int) -> None:
    sent = index
    async with AsyncOpenAI(base_url=base_url, api_key=BENCH_KEY, max_retries=0) as sdk:
        while not stop.is_set():
            sent += 1
            # Each request a conversation of its own, so that routing spreads them over every
            # replica (one prompt sent again and again would hash to one replica).
            messages: Any = [{"role": "user", "content": f"Client {index}, request {sent}: hello"}]
            started = time.monotonic()
            try:
                if sent % 2 == 0:
                    chunks = await sdk.chat.completions.create(
                        model=MODEL, messages=messages, max_tokens=8, stream=True
                    )
                    async for _ in chunks:
                        pass
                else:
                    await sdk.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)
            except openai.APIStatusError as error:
                tally.errors[f"http {error.status_code}"] += 1
                continue
            except (openai.APIConnectionError, httpx.HTTPError):
                tally.errors["connection"] += 1
                continue
            finished = time.monotonic()
            tally.done.append((finished, finished - started))


async def victim_healthy(root: str, victim_url: str) -> bool | None:
    """The victim's `warmgate_backend_healthy` gauge, None if /metrics did not answer."""
    async with httpx.AsyncClient(timeout=2.0) as http:
        try:
            text = (await http.get(root + "/metrics")).text
        except httpx.HTTPError:
            return None
    for line in text.splitlines():
        if line.startswith("warmgate_backend_healthy{") and f'@{victim_url}"' in line:
            return line.rsplit(" ", 1)[1] not in ("0", "0.0")
    return None


async def wait_health(root: str, victim_url: str, healthy: bool, timeout_s: float) -> float | None:
    """Seconds until the victim's health is `healthy`; None past `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await victim_healthy(root, victim_url) is healthy:
            return time.monotonic() - started
        await asyncio.sleep(POLL_S)
    return None


def rate(done: Sequence[tuple[float, float]], start: float, end: float) -> float:
    return sum(1 for at, _ in done if start <= at < end) / (end - start)


def recovered_after(
    done: Sequence[tuple[float, float]], stopped_at: float, until: float, floor: float
) -> float | None:
    """Seconds from the SIGSTOP to the start of the first 1 s window at `floor` req/s or more."""
    start = stopped_at
    while start + WINDOW_S <= until:
        if rate(done, start, start + WINDOW_S) >= floor:
            return start - stopped_at
        start += 0.1
    return None


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    steady_s = 4.0 if args.quick else 8.0
    wedged_s = 12.0 if args.quick else 20.0
    sim_port = free_port_range(REPLICAS)
    sims = [
        sim_process(
            workdir / f"sim-{i}",
            port=sim_port + i,
            replicas=1,
            model=MODEL,
            time_scale=0.05,
            cpus=None,
        )
        for i in range(REPLICAS)
    ]
    urls = [f"http://127.0.0.1:{sim_port + i}" for i in range(REPLICAS)]
    port = free_port()
    config = workdir / "gateway.toml"
    config.write_text(gateway_config(port, workdir / "data", args.budget_s, urls))
    argv = [sys.executable, "-m", "warmgate.proxy.cli", "serve", "--config", str(config)]
    gateway = ServerProcess(
        "gateway",
        argv,
        cpus=None,
        log_path=workdir / "gateway.log",
        env={BENCH_KEY_ENV: BENCH_KEY},
        cwd=REPO_ROOT,
    )
    victim = sims[0]
    tally = Tally()
    stop = asyncio.Event()
    root = f"http://127.0.0.1:{port}"
    try:
        for sim, url in zip(sims, urls, strict=True):
            sim.start()
            await asyncio.to_thread(sim.wait_until, url + "/health")
        gateway.start()
        await asyncio.to_thread(gateway.wait_until, root + "/ready")
        await wait_health(root, urls[0], True, 30.0)
        clients = [
            asyncio.create_task(client(root + "/v1", tally, stop, i)) for i in range(args.workers)
        ]
        try:
            await asyncio.sleep(1.0)  # warm-up: connections opened, not counted
            steady_from = time.monotonic()
            await asyncio.sleep(steady_s)
            stopped_at = time.monotonic()
            os.kill(victim.pid, signal.SIGSTOP)
            ejected_s = await wait_health(root, urls[0], False, wedged_s)
            await asyncio.sleep(max(0.0, stopped_at + wedged_s - time.monotonic()))
            wedged_until = time.monotonic()
            os.kill(victim.pid, signal.SIGCONT)
            readmitted_s = await wait_health(root, urls[0], True, 30.0)
        finally:
            stop.set()
            await asyncio.gather(*clients)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGCONT)
        gateway.stop()
        for sim in sims:
            sim.stop()
    return summary(args, tally, (steady_from, stopped_at, wedged_until), ejected_s, readmitted_s)


def summary(
    args: argparse.Namespace,
    tally: Tally,
    marks: tuple[float, float, float],
    ejected_s: float | None,
    readmitted_s: float | None,
) -> dict[str, Any]:
    """The figures, from the clients' tally and the phases' start times."""
    steady_from, stopped_at, wedged_until = marks
    wedged_s = wedged_until - stopped_at
    done = tally.done
    normal = rate(done, steady_from, stopped_at)
    steady_latencies = [lat for at, lat in done if steady_from <= at < stopped_at]
    wedged_latencies = [lat for at, lat in done if stopped_at <= at < wedged_until]
    recovered_s = recovered_after(done, stopped_at, wedged_until, 0.8 * normal)
    slowest_normal = max(steady_latencies)
    max_wait = max(wedged_latencies)
    ejected_at = stopped_at + (wedged_s if ejected_s is None else ejected_s)
    after_ejection = [lat for at, lat in done if at - lat >= ejected_at and at < wedged_until]
    one_retry = max([slowest_normal, *after_ejection])
    bound = args.budget_s + one_retry
    per_second = [
        round(rate(done, stopped_at + s, stopped_at + s + 1.0), 1) for s in range(int(wedged_s))
    ]
    return {
        "command": report.command_line("wedge", args.argv),
        "machine": report.machine(),
        "workers": args.workers,
        "first_byte_budget_s": args.budget_s,
        "normal_per_s": round(normal, 1),
        "ejected_after_s": None if ejected_s is None else round(ejected_s, 2),
        "ejected_within_3_budgets": ejected_s is not None and ejected_s <= 3 * args.budget_s,
        "recovered_after_s": None if recovered_s is None else round(recovered_s, 2),
        "recovered_within_10_s": recovered_s is not None and recovered_s <= 10.0,
        "per_second_after_stop": per_second,
        "slowest_normal_s": round(slowest_normal, 3),
        "slowest_after_ejection_s": round(max(after_ejection, default=0.0), 3),
        "max_wait_s": round(max_wait, 3),
        "wait_bound_s": round(bound, 3),
        "max_wait_within_bound": max_wait <= bound,
        "readmitted_after_cont_s": None if readmitted_s is None else round(readmitted_s, 2),
        "answered": len(done),
        "client_errors": dict(tally.errors),
    }


def markdown(result: Mapping[str, Any]) -> str:
    def verdict(ok: bool) -> str:
        return "yes" if ok else "**no**"

    table = report.markdown_table(
        ["measure", "value", "target", "met"],
        [
            ["normal throughput", f"{result['normal_per_s']} req/s", "", ""],
            [
                "ejected after SIGSTOP",
                f"{result['ejected_after_s']} s",
                f"≤ 3 x {result['first_byte_budget_s']} s",
                verdict(result["ejected_within_3_budgets"]),
            ],
            [
                "throughput ≥ 80 % of normal after",
                f"{result['recovered_after_s']} s",
                "≤ 10 s",
                verdict(result["recovered_within_10_s"]),
            ],
            [
                "longest client wait",
                f"{result['max_wait_s']} s",
                f"≤ budget + one retry = {result['wait_bound_s']} s",
                verdict(result["max_wait_within_bound"]),
            ],
            ["readmitted after SIGCONT", f"{result['readmitted_after_cont_s']} s", "", ""],
        ],
    )
    errors = ", ".join(f"{kind}: {n}" for kind, n in sorted(result["client_errors"].items()))
    seconds = ", ".join(str(v) for v in result["per_second_after_stop"])
    return (
        f"Command: `{result['command']}`\n\n"
        f"{result['workers']} clients (every other request streamed), 3 simulated replicas, "
        f"one SIGSTOPped; first-byte budget {result['first_byte_budget_s']} s.\n\n"
        f"{table}\n\nOne retry: the slowest normal answer took {result['slowest_normal_s']} s, "
        f"the slowest answer to a request sent after the ejection "
        f"{result['slowest_after_ejection_s']} s.\n\n"
        f"Requests per second, each second after the SIGSTOP: {seconds}.\n\n"
        f"{result['answered']} answers; client errors: {errors or 'none'}.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = argv
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-wedge-"))
    print(f"wedge: logs in {workdir}", flush=True)
    try:
        result = asyncio.run(run(args, workdir))
    except BaseException:
        print(f"wedge: failed; logs kept in {workdir}", file=sys.stderr)
        raise
    name = "wedge-quick" if args.quick else "wedge"
    paths = report.write_results(args.out, name, result, markdown)
    print(markdown(result))
    report.print_written(paths)
    with contextlib.suppress(OSError):
        shutil.rmtree(workdir)
    met = (
        result["ejected_within_3_budgets"]
        and result["recovered_within_10_s"]
        and result["max_wait_within_bound"]
        and not result["client_errors"]
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
