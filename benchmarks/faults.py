"""The ledger under faults: answered requests without a row, and rows twice, after PostgreSQL is
cut and the gateway is SIGKILLed under load.

One `warmgate serve` with its ledger in PostgreSQL, reached through a TCP relay that can cut it
(benchmarks/cut_relay.py), in front of simulated SGLang replicas; `--workers` SDK clients send
requests without pause (every third one streamed) through this schedule:

  steady load → PostgreSQL partitioned (bytes held, connections open) → restored →
  PostgreSQL reset (connections dropped, new ones refused) → restored →
  SIGKILL and restart, `--kills` times → PostgreSQL partitioned, SIGKILL during the partition,
  restored, restart → SIGTERM.

A request counts as answered when the client has the whole answer (a stream read to its end),
an error answer included. At the end every answered request id is looked up in the ledger:
`missing` answered requests have no row, `duplicated` ids have more than one; `unanswered rows`
are requests in flight at a kill whose answer never reached the client (accounted, not lost).
Client errors are the requests that met a dead gateway (expected during a kill).

    python -m benchmarks.faults            # ~2 min
    python -m benchmarks.faults --quick    # ~1 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
from openai import AsyncOpenAI

from benchmarks import report
from benchmarks.cut_relay import CutRelay
from benchmarks.gateway import BENCH_KEY, BENCH_KEY_ENV, REPO_ROOT
from benchmarks.processes import ServerProcess, free_port, free_port_range
from benchmarks.upstreams import replica_urls, sim_process

MODEL = "demo"
MESSAGES: Any = [{"role": "user", "content": "How do flat prices work?"}]
RETRY_PAUSE_S = 0.05  # a client that met a dead gateway tries again after this


@dataclass
class Plan:
    workers: int
    kills: int
    steady_s: float
    partition_s: float
    reset_s: float
    between_kills_s: float


@dataclass
class Tally:
    answered: dict[str, str] = field(default_factory=dict)  # request id -> phase
    errors: Counter[str] = field(default_factory=Counter)
    phase: str = "steady"
    phases: list[tuple[str, float]] = field(default_factory=list)  # (name, monotonic start)

    def enter(self, phase: str) -> None:
        self.phase = phase
        self.phases.append((phase, time.monotonic()))
        print(f"  {phase}", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter phases: ~1 minute")
    parser.add_argument("--workers", type=int, default=30, help="concurrent clients")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs under load")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="the PostgreSQL database (a schema of its own is created and dropped)",
    )
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR, help="results folder")
    return parser.parse_args(argv)


def gateway_config(port: int, data_dir: Path, ledger_url: str, backends: Sequence[str]) -> str:
    lines = [
        'host = "127.0.0.1"',
        f"port = {port}",
        f'data_dir = "{data_dir}"',
        "[ledger]",
        f'url = "{ledger_url}"',
        "read_timeout_s = 2.0",
        "write_timeout_s = 2.0",
        "[routing]",
        "load_poll_interval_s = 0.0",
        "[health]",
        'probe_path = "/health"',
        "[[models]]",
        f'name = "{MODEL}"',
        'price_per_request = "0.001"',
    ]
    for url in backends:
        lines += ["[[models.backends]]", f'url = "{url}"']
    lines += ["[[keys]]", 'name = "faults"', f'secret_env = "{BENCH_KEY_ENV}"']
    return "\n".join(lines) + "\n"


async def client(base_url: str, tally: Tally, stop: asyncio.Event, index: int) -> None:
    sent = index
    async with AsyncOpenAI(base_url=base_url, api_key=BENCH_KEY, max_retries=0) as sdk:
        while not stop.is_set():
            sent += 1
            try:
                if sent % 3 == 0:
                    chunks = await sdk.chat.completions.create(
                        model=MODEL, messages=MESSAGES, max_tokens=4, stream=True
                    )
                    async for _ in chunks:
                        pass
                    request_id = chunks.response.headers["x-request-id"]
                else:
                    raw = await sdk.chat.completions.with_raw_response.create(
                        model=MODEL, messages=MESSAGES, max_tokens=4
                    )
                    request_id = raw.headers["x-request-id"]
            except openai.APIStatusError as error:  # an answer: it has a row too
                request_id = error.response.headers["x-request-id"]
                tally.errors[f"http {error.status_code}"] += 1
            except (openai.APIConnectionError, httpx.HTTPError):
                tally.errors["gateway unreachable"] += 1
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            tally.answered[request_id] = tally.phase


class Gateway:
    """`warmgate serve` on a fixed port, restarted as often as the schedule says."""

    def __init__(self, workdir: Path, port: int, config: Path) -> None:
        self.workdir = workdir
        self.port = port
        self.config = config
        self.starts = 0
        self.process: ServerProcess | None = None

    async def start(self) -> None:
        self.starts += 1
        argv = [sys.executable, "-m", "warmgate.proxy.cli", "serve", "--config", str(self.config)]
        log = self.workdir / f"gateway-{self.starts}.log"
        process = ServerProcess(
            "gateway", argv, cpus=None, log_path=log, env={BENCH_KEY_ENV: BENCH_KEY}, cwd=REPO_ROOT
        ).start()
        self.process = process
        await asyncio.to_thread(process.wait_until, f"http://127.0.0.1:{self.port}/ready")

    def kill(self) -> None:
        assert self.process is not None
        assert self.process.process is not None
        self.process.process.kill()
        self.process.process.wait(timeout=10)

    async def stop(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(self.process.stop)

    def replayed_rows(self) -> int:
        total = 0
        for log in self.workdir.glob("gateway-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if '"event":"ledger_spool_replayed"' in line:
                    total += int(line.split('"rows":')[1].split(",")[0].split("}")[0])
        return total


async def schedule(plan: Plan, gateway: Gateway, relay: CutRelay, tally: Tally) -> None:
    async def hold(seconds: float) -> None:
        await asyncio.sleep(seconds)

    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("steady", lambda: hold(plan.steady_s)),
    ]

    async def partition() -> None:
        relay.partition()
        await hold(plan.partition_s)
        relay.restore()

    async def reset() -> None:
        relay.reset()
        await hold(plan.reset_s)
        relay.restore()

    async def kill_and_restart() -> None:
        await hold(plan.between_kills_s)
        gateway.kill()
        await gateway.start()

    async def kill_during_partition() -> None:
        relay.partition()
        await hold(plan.between_kills_s)
        gateway.kill()
        relay.restore()
        await gateway.start()

    steps += [("postgres partitioned", partition), ("after partition", lambda: hold(2.0))]
    steps += [("postgres reset", reset), ("after reset", lambda: hold(2.0))]
    steps += [(f"sigkill {i + 1}", kill_and_restart) for i in range(plan.kills)]
    steps += [("sigkill during partition", kill_during_partition)]
    steps += [("final", lambda: hold(plan.between_kills_s))]
    for name, step in steps:
        tally.enter(name)
        await step()


async def count(ledger_url: str) -> tuple[int, set[str], int]:
    """(rows, request ids, ids stored more than once)."""
    conn = await asyncpg.connect(ledger_url)
    try:
        rows = await conn.fetch("SELECT request_id FROM warmgate_ledger")
        duplicated = await conn.fetchval(
            "SELECT COUNT(*) FROM (SELECT request_id FROM warmgate_ledger "
            "GROUP BY request_id HAVING COUNT(*) > 1) AS twice"
        )
    finally:
        await conn.close()
    return len(rows), {row[0] for row in rows}, int(duplicated)


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    plan = Plan(
        workers=args.workers,
        kills=args.kills,
        steady_s=3.0 if args.quick else 5.0,
        partition_s=4.0 if args.quick else 10.0,
        reset_s=2.0 if args.quick else 5.0,
        between_kills_s=2.0 if args.quick else 4.0,
    )
    schema = f"wg_faults_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.postgres)
    await admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in args.postgres else "?"
    ledger_url = f"{args.postgres}{separator}search_path={schema}"
    sim_port = free_port_range(2)
    port = free_port()
    host, _, rest = args.postgres.split("@", 1)[1].partition(":")
    relay = CutRelay(host, int(rest.split("/", 1)[0])).start()
    config = workdir / "gateway.toml"
    config.write_text(
        gateway_config(port, workdir / "data", relay.url_for(ledger_url), replica_urls(sim_port, 2))
    )
    gateway = Gateway(workdir, port, config)
    tally = Tally()
    stop = asyncio.Event()
    sim = sim_process(
        workdir, port=sim_port, replicas=2, model=MODEL, time_scale=0.05, cpus=None
    ).start()
    try:
        await asyncio.to_thread(sim.wait_until, f"http://127.0.0.1:{sim_port}/health")
        await gateway.start()
        base_url = f"http://127.0.0.1:{port}/v1"
        clients = [
            asyncio.create_task(client(base_url, tally, stop, i)) for i in range(plan.workers)
        ]
        started = time.monotonic()
        try:
            await schedule(plan, gateway, relay, tally)
        finally:
            stop.set()
            await asyncio.gather(*clients)
        elapsed_s = time.monotonic() - started
        await gateway.stop()  # SIGTERM: drained
        rows, stored, duplicated = await count(ledger_url)
    finally:
        await gateway.stop()
        sim.stop()
        relay.stop()
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
    missing = [rid for rid in tally.answered if rid not in stored]
    dead_letters = workdir / "data" / "ledger-dead-letters.jsonl"
    return {
        "command": report.command_line("faults", args.argv),
        "machine": report.machine(),
        "plan": plan.__dict__,
        "seconds": round(elapsed_s, 1),
        "answered": len(tally.answered),
        "answered_per_s": round(len(tally.answered) / elapsed_s, 1),
        "rows": rows,
        "missing": len(missing),
        "missing_by_phase": dict(Counter(tally.answered[rid] for rid in missing)),
        "duplicated": duplicated,
        "unanswered_rows": len(stored - set(tally.answered)),
        "set_aside": len(dead_letters.read_text().splitlines()) if dead_letters.exists() else 0,
        "replayed_from_spool": gateway.replayed_rows(),
        "gateway_starts": gateway.starts,
        "client_errors": dict(tally.errors),
        "phases": [name for name, _ in tally.phases],
        "answered_by_phase": dict(Counter(tally.answered.values())),
    }


def markdown(result: dict[str, Any]) -> str:
    summary = report.markdown_table(
        ["answered", "rows", "missing", "duplicated", "unanswered rows", "set aside", "replayed"],
        [
            [
                result["answered"],
                result["rows"],
                result["missing"],
                result["duplicated"],
                result["unanswered_rows"],
                result["set_aside"],
                result["replayed_from_spool"],
            ]
        ],
    )
    by_phase = result["answered_by_phase"]
    phases = report.markdown_table(
        ["phase", "answered"], [[name, by_phase.get(name, 0)] for name in result["phases"]]
    )
    errors = ", ".join(f"{kind}: {n}" for kind, n in sorted(result["client_errors"].items()))
    return (
        f"Command: `{result['command']}`\n\n"
        f"{result['plan']['workers']} clients, {result['seconds']} s, "
        f"{result['answered_per_s']} answers/s, {result['gateway_starts']} gateway starts "
        f"({result['plan']['kills'] + 1} SIGKILLs, one during a PostgreSQL partition).\n\n"
        f"{summary}\n\nAnswers per phase:\n\n{phases}\n\n"
        f"Client errors (requests that met a dead gateway, retried): {errors or 'none'}.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = argv
    workdir = Path(tempfile.mkdtemp(prefix="warmgate-faults-"))
    print(f"faults: logs in {workdir}", flush=True)
    try:
        result = asyncio.run(run(args, workdir))
    except BaseException:
        print(f"faults: failed; logs kept in {workdir}", file=sys.stderr)
        raise
    name = "faults-quick" if args.quick else "faults"
    report.write_json(args.out / f"{name}.json", result)
    text = markdown(result)
    (args.out / f"{name}.md").write_text(text)
    print(text)
    with contextlib.suppress(OSError):
        shutil.rmtree(workdir)
    return 0 if result["missing"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
