"""`warmgate sim`: serve N simulated SGLang replicas on ports P..P+N-1 until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from backends.sim.cluster import SimCluster
from backends.sim.config import DEFAULT_PORT, SimConfig

_FLAG_HELP = {
    "model": "model path, reported by /model_info and used as the served name",
    "api_key": "require 'Authorization: Bearer KEY' (not on /health*, /ready, /metrics)",
    "time_scale": "multiply every delay (0: as fast as possible)",
    "kv_tokens": "KV cache capacity in tokens (SGLang --max-total-tokens)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warmgate sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--replicas", type=int, default=1)
    defaults = SimConfig()
    for field in msgspec.structs.fields(SimConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        help_text = (
            f"{_FLAG_HELP.get(field.name, field.name.replace('_', ' '))} (default: {default})"
        )
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            parser.add_argument(
                flag, type=_parser_for(field.name, default), default=default, help=help_text
            )
    return parser


def _parser_for(name: str, default: Any) -> Any:
    if name in {"max_queued_requests", "cut_stream_after_tokens"}:
        return int
    if name in {"served_model_name", "api_key", "reasoning_parser", "tool_call_parser"}:
        return str
    return type(default)


def config_from(args: argparse.Namespace) -> SimConfig:
    names = [field.name for field in msgspec.structs.fields(SimConfig)]
    return SimConfig(**{name: getattr(args, name) for name in names})


async def serve(cluster: SimCluster) -> None:
    await cluster.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    for url in cluster.urls:
        print(
            f"warmgate sim: SGLang simulator serving {cluster.config.served_name} at {url}",
            flush=True,
        )
    try:
        await stop.wait()
        print("warmgate sim: draining", flush=True)
        await cluster.drain()
    finally:
        await cluster.close()


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        config = config_from(args)
        cluster = SimCluster(config, replicas=args.replicas, host=args.host, port=args.port)
    except ValueError as exc:
        print(f"warmgate sim: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on Windows

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(cluster))
    return 0
