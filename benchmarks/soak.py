"""A soak: `warmgate serve` over simulated SGLang replicas at a fixed request rate for minutes,
reporting errors and the gateway's resident memory over time.

The load is open-loop (a request starts every 1/rate s whether or not earlier ones finished,
as real traffic does): chat completions, a share of them streamed, each with a prompt of its
own, through the official-SDK-shaped HTTP API with a key, limits, the ledger and the access
log on. Every `--sample-s` the run records the requests finished, their errors by kind, the
latency percentiles of that window and the gateway's RSS (its whole process tree, from /proc).

    python -m benchmarks.soak                          # 10 minutes at 40 req/s
    python -m benchmarks.soak --minutes 1 --rate 20    # a quick look

Writes benchmarks/results/soak.{json,md}. The verdict: no error, and RSS at the end within
`--max-growth-mb` of RSS after the first sample (the warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks import report
from benchmarks.gateway import BENCH_KEY, warmgate_process
from benchmarks.processes import free_port, free_port_range
from benchmarks.upstreams import replica_urls, sim_process

MODEL = "demo"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "wizards",
    "quietly",
    "hex",
]


class Window:
    """What finished since the last sample."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()

    def take(self) -> tuple[list[float], collections.Counter[str]]:
        taken = self.latencies_ms, self.errors
        self.latencies_ms, self.errors = [], collections.Counter()
        return taken


def chat_body(rng: random.Random, stream: bool) -> dict[str, Any]:
    prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 64)))
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": rng.randint(8, 48),
    }
    if stream:
        body["stream"] = True
    return body


async def one_request(
    client: httpx.AsyncClient, body: dict[str, Any], window: Window, timeout_s: float
) -> None:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            if body.get("stream"):
                async with client.stream("POST", "/v1/chat/completions", json=body) as answer:
                    text = b"".join([chunk async for chunk in answer.aiter_bytes()])
                    if answer.status_code != 200:
                        window.errors[f"status {answer.status_code}"] += 1
                        return
                    if not text.endswith(b"data: [DONE]\n\n") or b'"error"' in text:
                        window.errors["stream not complete"] += 1
                        return
            else:
                answer = await client.post("/v1/chat/completions", json=body)
                if answer.status_code != 200:
                    window.errors[f"status {answer.status_code}"] += 1
                    return
    except TimeoutError:
        window.errors["timeout"] += 1
        return
    except httpx.TransportError as exc:
        window.errors[type(exc).__name__] += 1
        return
    window.latencies_ms.append((time.monotonic() - started) * 1000.0)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def soak(
    root: str, *, minutes: float, rate: float, stream_share: float, sample_s: float,
    timeout_s: float, rss: Any, seed: int,
) -> list[dict[str, Any]]:  # fmt: skip
    rng = random.Random(seed)
    window = Window()
    samples: list[dict[str, Any]] = []
    # Idle connections are dropped before the gateway's keep-alive timeout (uvicorn's 5 s) does
    # it, so that no request is sent on a connection the server is closing.
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=4.0)
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    async with (
        httpx.AsyncClient(
            base_url=root, headers=headers, limits=limits, timeout=httpx.Timeout(timeout_s)
        ) as client,
        asyncio.TaskGroup() as requests,
    ):
        started = time.monotonic()
        end = started + minutes * 60.0
        next_sample = started + sample_s
        sent = 0
        while (now := time.monotonic()) < end:
            due = started + sent / rate
            if due > now:
                await asyncio.sleep(min(due, next_sample) - now)
                now = time.monotonic()
            while started + sent / rate <= now:
                body = chat_body(rng, rng.random() < stream_share)
                requests.create_task(one_request(client, body, window, timeout_s))
                sent += 1
            if now >= next_sample:
                samples.append(sample(now - started, sent, window, rss()))
                print(f"[soak] {format_sample(samples[-1])}", flush=True)
                next_sample += sample_s
    samples.append(sample(time.monotonic() - started, sent, window, rss()))
    print(f"[soak] {format_sample(samples[-1])} (requests in flight at the end finished)")
    return samples


def sample(elapsed_s: float, sent: int, window: Window, rss_bytes: int) -> dict[str, Any]:
    latencies, errors = window.take()
    return {
        "elapsed_s": round(elapsed_s, 1),
        "sent": sent,
        "finished_ok": len(latencies),
        "errors": dict(errors),
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p99_ms": percentile(latencies, 0.99),
        "rss_mb": round(rss_bytes / 2**20, 1),
    }


def format_sample(row: dict[str, Any]) -> str:
    p50 = row["latency_p50_ms"]
    shown = f"{p50:.0f} ms" if p50 is not None else "-"
    return (
        f"t={row['elapsed_s']:.0f}s sent={row['sent']} ok={row['finished_ok']} "
        f"errors={sum(row['errors'].values())} p50={shown} rss={row['rss_mb']} MB"
    )


def render(doc: Mapping[str, Any]) -> str:
    rows = [
        [
            row["elapsed_s"],
            row["sent"],
            row["finished_ok"],
            sum(row["errors"].values()),
            ", ".join(f"{k}: {v}" for k, v in row["errors"].items()) or "-",
            row["latency_p50_ms"],
            row["latency_p99_ms"],
            row["rss_mb"],
        ]
        for row in doc["samples"]
    ]
    headers = ["t (s)", "sent", "ok", "errors", "error kinds", "p50 ms", "p99 ms", "RSS MB"]
    summary = doc["summary"]
    machine = doc["machine"]
    setup = (
        f"{doc['rate']} req/s for {doc['minutes']} min ({doc['stream_share']:.0%} streamed) "
        f"through `warmgate serve` (keys, limits, ledger, access log on) over "
        f"{doc['replicas']} simulated replicas at time scale {doc['time_scale']}. "
        f"Machine: {machine['cpus']} x {machine['cpu_model']}."
    )
    verdict = (
        f"Requests: {summary['requests']}, errors: {summary['errors']}; RSS after the first "
        f"sample {summary['rss_after_warmup_mb']} MB, at the end {summary['rss_end_mb']} MB "
        f"(growth {summary['rss_growth_mb']} MB, allowed {doc['max_growth_mb']} MB). "
        f"Verdict: **{'pass' if doc['passed'] else 'FAIL'}**"
    )
    lines = ["# Soak", "", f"Command: `{doc['command']}`", "", setup, ""]
    lines += [report.markdown_table(headers, rows), "", verdict]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=40.0, help="requests started per second")
    parser.add_argument("--stream-share", type=float, default=0.5)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.1, help="the simulator's clock")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--max-growth-mb", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-soak-"))
    sim_port, port = free_port_range(args.replicas), free_port()
    urls = replica_urls(sim_port, args.replicas)
    print(f"[soak] logs in {workdir}", flush=True)
    with (
        sim_process(
            workdir,
            port=sim_port,
            replicas=args.replicas,
            model=MODEL,
            time_scale=args.time_scale,
            cpus=None,
        ) as sim,
        warmgate_process(
            "warmgate", workdir, port=port, model=MODEL, backends=urls, cpus=None
        ) as gateway,
    ):
        sim.wait_until(urls[0] + "/health")
        root = f"http://127.0.0.1:{port}"
        gateway.wait_until(root + "/health")
        samples = asyncio.run(
            soak(
                root,
                minutes=args.minutes,
                rate=args.rate,
                stream_share=args.stream_share,
                sample_s=args.sample_s,
                timeout_s=args.timeout_s,
                rss=gateway.rss_bytes,
                seed=args.seed,
            )
        )
        alive = gateway.alive()
    errors = sum(sum(row["errors"].values()) for row in samples)
    requests = samples[-1]["sent"]
    warm, end = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    growth = round(end - warm, 1)
    passed = alive and errors == 0 and growth <= args.max_growth_mb
    doc = {
        "command": report.command_line("soak", argv),
        "machine": report.machine(),
        "rate": args.rate,
        "minutes": args.minutes,
        "stream_share": args.stream_share,
        "replicas": args.replicas,
        "time_scale": args.time_scale,
        "max_growth_mb": args.max_growth_mb,
        "passed": passed,
        "summary": {
            "requests": requests,
            "errors": errors,
            "ok_share": round(sum(row["finished_ok"] for row in samples) / requests, 4)
            if requests
            else None,
            "latency_p50_ms_median": statistics.median(
                [row["latency_p50_ms"] for row in samples if row["latency_p50_ms"] is not None]
                or [0.0]
            ),
            "rss_after_warmup_mb": warm,
            "rss_end_mb": end,
            "rss_growth_mb": growth,
            "gateway_alive_at_end": alive,
        },
        "samples": samples,
    }
    paths = report.write_results(args.out, "soak", doc, render)
    print(render(doc))
    report.print_written(paths)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
