"""Limits shared through a distant, then failing Redis: what admission adds to a request, whether
a key's rpm holds across three edges, and what edges admit while Redis is cut off.

Each edge is a Redis limiter (benchmarks/limiter_fleet.py) that reaches Redis through its own
fault proxy adding --latency-ms each way (80 ms per round trip by default: Redis in another
region). All run in this one process, as separate limiter processes would.

1. latency: admissions one at a time (c=1), 500 a second, each released before the next, on a
   key with all three limits; the time `admit()` takes, local limits vs Redis direct vs Redis
   behind the proxy.
2. edges: 3 edges hammer an rpm-600 key for two whole minutes; admissions per minute.
3. outage: 3 edges hammer an rpm-600 key, a concurrency-6 key and a quota key; all proxies
   refuse for --cut-s (20 s), starting half a second before a minute window and ending half a
   second after a later one, so whole windows pass with Redis out.
Runs 2 and 3 use a clock sped up so that the windows the cut must span fit it (the report
states the scale); latencies, the cut and the proxies stay in real time.

    python -m benchmarks.limits            # about 80 s; needs Redis on 127.0.0.1:6379
    python -m benchmarks.limits --quick    # about 20 s
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from benchmarks import report
from benchmarks.limiter_fleet import ScaledClock, Tally, client, edges
from benchmarks.limits_report import plot, render
from benchmarks.stats import distribution_ms
from warmgate.proxy.keys import Key
from warmgate.proxy.limits import LocalLimiter, RedisLimiter
from warmgate.proxy.limits.shares import spare_cap

WINDOW_START = 1_795_000_020.0  # a minute boundary: run 2 and 3's clocks start on one
LEAD_REAL_S = 2.0  # to set the edges up before the first minute starts
EDGES = 3
RPM = 600
CONCURRENCY = 6
QUOTA = 8000
ALL_LIMITS = Key(
    id="key_all", name="all", rpm=6000, max_concurrency=100, quota=10**6, quota_period="day"
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.limits", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run: about 20 s")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port of Redis")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="added each way")
    parser.add_argument("--admissions", type=int, help="run 1, per limiter (default 2000)")
    parser.add_argument("--minute-s", type=float, help="run 2's minute (default 9.5, quick 3)")
    parser.add_argument("--cut-s", type=float, help="run 3's outage (default 20, quick 4)")
    parser.add_argument("--clients", type=int, default=8, help="clients per edge and key")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR)
    parser.add_argument("--name", help="result file stem")
    return parser.parse_args(argv)


async def latency_run(limiter: Any, count: int, interval_s: float) -> dict[str, Any]:
    await limiter.start()
    try:
        times: list[float] = []
        for _ in range(count):
            started = time.perf_counter()
            admission = await limiter.admit(ALL_LIMITS, "demo")
            times.append(time.perf_counter() - started)
            admission.release()
            await asyncio.sleep(interval_s)
        health = limiter.health()
        return {
            "admit_ms": distribution_ms(times),
            "waited": health.waits,
            "exchanges": health.exchanges,
        }
    finally:
        await limiter.close()


async def run_latency(
    args: argparse.Namespace, redis: tuple[str, int], prefix: str
) -> dict[str, Any]:
    from benchmarks.fault_proxy import FaultProxyThread  # noqa: PLC0415 - this run only

    count = args.admissions or (300 if args.quick else 2000)
    interval_s = 0.002
    rows = {"local": await latency_run(LocalLimiter(), count, interval_s)}
    direct = f"redis://{redis[0]}:{redis[1]}/0"
    rows["redis"] = await latency_run(
        RedisLimiter(direct, prefix=prefix + ":direct"), count, interval_s
    )
    with FaultProxyThread(*redis) as proxy:
        delay_s = args.latency_ms / 1000
        proxy.delay(to_server_s=delay_s, to_client_s=delay_s)
        url = f"redis://127.0.0.1:{proxy.port}/0"
        rows["redis_far"] = await latency_run(
            RedisLimiter(url, prefix=prefix + ":far"), count, interval_s
        )
    return {"admissions": count, "interval_ms": interval_s * 1000, "rows": rows}


async def hammer(
    keys: Sequence[Key],
    clock: ScaledClock,
    *,
    args: argparse.Namespace,
    redis: tuple[str, int],
    prefix: str,
    end_real_s: float,
    cut: tuple[float, float] | None = None,
) -> tuple[Tally, list[list[tuple[float, str]]], dict[str, Any]]:
    """Clients on every edge for every key from the clock's first minute until `end_real_s`;
    Redis cut during `cut` (real seconds from the first minute's start)."""
    tally = Tally()
    stop, cutting = asyncio.Event(), asyncio.Event()
    recovery: dict[str, Any] = {}
    async with edges(
        EDGES, redis=redis, latency_s=args.latency_ms / 1000, clock=clock, prefix=prefix
    ) as fleet:
        recovery["started_late_s"] = round(max(0.0, clock.real_s()), 3)
        await clock.sleep_until_real(0.0)
        hold_s = {"rpm": 0.005, "concurrency": 0.1, "quota": 0.05}
        tasks = [
            asyncio.create_task(
                client(
                    edge,
                    fleet,
                    key,
                    clock=clock,
                    hold_s=hold_s[key.name],
                    stop=stop,
                    cut=cutting,
                    tally=tally,
                )
            )
            for edge in fleet
            for key in keys
            for _ in range(args.clients)
        ]
        if cut is not None:
            await clock.sleep_until_real(cut[0])
            cutting.set()
            recovery["processes_seen_at_cut"] = [edge.limiter.health().processes for edge in fleet]
            for edge in fleet:
                await asyncio.to_thread(edge.proxy.refuse)
            await clock.sleep_until_real(cut[1])
            for edge in fleet:
                await asyncio.to_thread(edge.proxy.restore)
            cutting.clear()
            restored = clock.real_s()
            for edge in fleet:
                await edge.events.reachable_again.wait()
            recovery["reachable_after_s"] = round(clock.real_s() - restored, 3)
        await clock.sleep_until_real(end_real_s)
        stop.set()
        await asyncio.gather(*tasks)
        recovery["health"] = [_health(edge.limiter) for edge in fleet]
        events = [edge.events.lines for edge in fleet]
    return tally, events, recovery


def _health(limiter: RedisLimiter) -> dict[str, Any]:
    health = limiter.health()
    return {name: getattr(health, name) for name in health.__struct_fields__}


def per_window(tally: Tally, key: str, first: int) -> list[dict[str, Any]]:
    """Admissions of `key` per minute (counted from `first`) and edge."""
    counts: dict[int, list[int]] = {}
    degraded: dict[int, int] = {}
    for a in tally.admitted:
        if a.key == key:
            window = a.window - first
            counts.setdefault(window, [0] * EDGES)[a.edge] += 1
            degraded[window] = degraded.get(window, 0) + a.degraded
    return [
        {
            "window": w,
            "per_edge": counts[w],
            "total": sum(counts[w]),
            "degraded": degraded.get(w, 0),
        }
        for w in sorted(counts)
    ]


def lead_clock(window_real_s: float) -> ScaledClock:
    """A clock whose minutes last `window_real_s`, the first starting LEAD_REAL_S from now."""
    return ScaledClock(WINDOW_START, 60 / window_real_s, lead_s=LEAD_REAL_S)


async def run_edges(
    args: argparse.Namespace, redis: tuple[str, int], prefix: str
) -> dict[str, Any]:
    window_real_s = args.minute_s or (3.0 if args.quick else 9.5)
    clock = lead_clock(window_real_s)
    key = Key(id="key_rpm", name="rpm", rpm=RPM)
    tally, events, _ = await hammer(
        [key],
        clock,
        args=args,
        redis=redis,
        prefix=prefix + ":edges",
        end_real_s=2 * window_real_s - 0.05,
    )
    first = int(WINDOW_START // 60)
    return {
        "scale": round(clock.scale, 3),
        "window_real_s": window_real_s,
        "windows": per_window(tally, "rpm", first),
        "refused": tally.refused,
        "errors": tally.errors,
        "events": events,
        "spare_cap_per_edge": spare_cap(RPM, EDGES),
    }


async def run_outage(
    args: argparse.Namespace, redis: tuple[str, int], prefix: str
) -> dict[str, Any]:
    cut_s = args.cut_s or (4.0 if args.quick else 20.0)
    margin_s = 0.5
    window_real_s = (cut_s - 2 * margin_s) / 2  # two whole windows inside the cut
    clock = lead_clock(window_real_s)
    keys = [
        Key(id="key_rpm", name="rpm", rpm=RPM),
        Key(id="key_conc", name="concurrency", max_concurrency=CONCURRENCY),
        Key(id="key_quota", name="quota", quota=QUOTA, quota_period="day"),
    ]
    cut = (window_real_s - margin_s, window_real_s - margin_s + cut_s)
    tally, events, recovery = await hammer(
        keys,
        clock,
        args=args,
        redis=redis,
        prefix=prefix + ":outage",
        end_real_s=4 * window_real_s - 0.05,
        cut=cut,
    )
    first = int(WINDOW_START // 60)
    quota_admitted = sum(1 for a in tally.admitted if a.key == "quota")
    return {
        "scale": round(clock.scale, 3),
        "window_real_s": window_real_s,
        "cut_real_s": [round(c, 3) for c in cut],
        "rpm_windows": per_window(tally, "rpm", first),
        "windows_inside_cut": [1, 2],
        "share_per_edge": math.floor(RPM / EDGES),
        "concurrency_peak_in_cut": tally.peak_in_flight_cut.get("concurrency", 0),
        "concurrency_peak_in_cut_per_edge": tally.peak_in_flight_cut_per_edge.get("concurrency"),
        "quota_admitted": quota_admitted,
        "quota_degraded": sum(1 for a in tally.admitted if a.key == "quota" and a.degraded),
        "refused": tally.refused,
        "errors": tally.errors,
        "events": events,
        "recovery": recovery,
    }


def goal(text: str, measured: object, met: bool) -> dict[str, Any]:
    return {"goal": text, "measured": measured, "met": met}


def goals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    round_trip_ms = doc["latency_ms"] * 2
    far = doc["latency"]["rows"]["redis_far"]["admit_ms"]["p50"]
    worst = max(w["total"] for w in doc["edges"]["windows"])
    outage = doc["outage"]
    inside = [w for w in outage["rpm_windows"] if w["window"] in outage["windows_inside_cut"]]
    share = outage["share_per_edge"]
    worst_edge = max((max(w["per_edge"]) for w in inside), default=0)
    worst_inside = max((w["total"] for w in inside), default=0)
    worst_total = max((w["total"] for w in outage["rpm_windows"]), default=0)
    errors = sum(outage["errors"].values()) + sum(doc["edges"]["errors"].values())
    recovered = outage["recovery"].get("reachable_after_s")
    logged = [[name for _, name in lines] for lines in outage["events"]]
    one_line_each = all(
        names == ["limits_store_unreachable", "limits_store_reachable"] for names in logged
    )
    peak = outage["concurrency_peak_in_cut"]
    quota = outage["quota_admitted"]
    return [
        goal(f"admission p50 at c=1, Redis {round_trip_ms:g} ms away (ms, ≤ 1.5)", far, far <= 1.5),
        goal(f"rpm-{RPM} key, {EDGES} edges: most admissions in a minute (≤ 630)", worst,
             worst <= RPM * 1.05),
        goal(f"Redis cut: admissions per edge in a minute inside it (≤ local share {share})",
             worst_edge, bool(inside) and worst_edge <= share),
        goal(f"Redis cut: admissions in a minute inside it, all edges (≤ {RPM})", worst_inside,
             bool(inside) and worst_inside <= RPM),
        goal("Redis cut: admissions in any minute, the cut's first and last included (≤ 630)",
             worst_total, worst_total <= RPM * 1.05),
        goal(f"Redis cut: concurrency-{CONCURRENCY} key, most in flight (≤ {CONCURRENCY})", peak,
             peak <= CONCURRENCY),
        goal(f"Redis cut: quota-{QUOTA} key, admitted over the whole run (≤ {QUOTA * 1.05:g})",
             quota, quota <= QUOTA * 1.05),
        goal("errors other than 429 (= 0)", errors, errors == 0),
        goal("Redis cut: one log line per edge when it goes, one when it is back",
             one_line_each, one_line_each),
        goal("back on shared limits after the cut, no restart (s)", recovered,
             recovered is not None),
    ]  # fmt: skip


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    host, _, port = args.redis.partition(":")
    redis = (host, int(port or 6379))
    prefix = f"warmgate:bench:{os.urandom(4).hex()}"
    return {
        "latency": await run_latency(args, redis, prefix),
        "edges": await run_edges(args, redis, prefix),
        "outage": await run_outage(args, redis, prefix),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    doc: dict[str, Any] = {
        "benchmark": "limits",
        "command": report.command_line("limits", argv),
        "machine": report.machine(),
        "latency_ms": args.latency_ms,
        "clients_per_edge_and_key": args.clients,
        "setup": {"edges": EDGES, "rpm": RPM, "concurrency": CONCURRENCY, "quota": QUOTA},
        **uvloop.run(run_all(args)),
    }
    doc["wall_s"] = round(time.monotonic() - started, 1)
    doc["goals"] = goals(doc)
    name = args.name or ("limits-quick" if args.quick else "limits")
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / f"{name}.json", doc)
    (args.out / f"{name}.md").write_text(render(doc))
    plot(doc, args.out / f"{name}.png")
    print(render(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
