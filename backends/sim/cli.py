"""`warmgate sim`: serve N simulated SGLang replicas on ports P..P+N-1 until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from warmgate.backends.sim.cluster import SimCluster
from warmgate.backends.sim.config import DEFAULT_PORT, SimConfig

_FLAG_HELP = {
    "model": "model path, reported by /model_info and used as the served name",
    "served_model_name": "name in /v1/models (SGLang --served-model-name)",
    "api_key": "require 'Authorization: Bearer KEY' (not on /health*, /ready, /metrics)",
    "enable_metrics": "serve GET /metrics (SGLang --enable-metrics)",
    "enable_cache_report": "report prompt_tokens_details.cached_tokens",
    "reasoning_parser": "deepseek-r1 | qwen3: answers start with reasoning_content",
    "tool_call_parser": "parse tool calls under tool_choice auto ('none' to disable)",
    "stream_include_usage_default": "usage event on every stream (SGLang's flag of that name)",
    "allow_auto_truncate": "clip max_tokens to the context instead of a 400",
    "context_length": "model context in tokens",
    "embedding_dim": "width of /v1/embeddings vectors",
    "keep_alive_s": "close idle keep-alive connections after this many seconds",
    "max_running_requests": "requests decoded together at most",
    "kv_tokens": "KV cache capacity in tokens (SGLang --max-total-tokens)",
    "max_queued_requests": "waiting-queue bound; beyond it 503 (default unbounded)",
    "chunked_prefill_size": "uncached prompt tokens per prefill pass",
    "page_size": "prefix-cache block size in tokens",
    "prefill_tokens_per_s": "prefill speed on uncached tokens",
    "prefill_overhead_s": "fixed cost of one prefill pass",
    "itl_base_s": "decode step time with an empty batch",
    "itl_per_running_req_s": "decode step time added per running request",
    "output_tokens_mean": "mean natural answer length (exponential, seeded)",
    "startup_s": "seconds of 503 on /health after start",
    "time_scale": "multiply every delay (0: as fast as possible)",
    "network_delay_ms": "delay every answer's first byte and each streamed chunk (regions)",
    "seed": "seed of generated text, lengths and fault draws",
    "fail_rate": "share of generation requests that fail",
    "fail_status": "status of those failures (500, 502, 503, 504)",
    "hang_before_first_byte": "hold every request before its first byte",
    "cut_stream_after_tokens": "drop stream connections after N tokens",
    "error_stream_after_tokens": "end streams after N tokens with an in-band 500 error event",
    "slow_decode_factor": "multiply every decode step",
    "never_ready": "stay in 'Starting': /health*, /ready, /ping answer 503",
    "unhealthy": "/health* and /ping answer 503",
    "refuse_connections": "start with the listening socket closed",
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
    if name in {"max_queued_requests", "cut_stream_after_tokens", "error_stream_after_tokens"}:
        return _optional(int)
    if name in {"served_model_name", "api_key", "reasoning_parser", "tool_call_parser"}:
        return _optional(str)
    return type(default)


def _optional(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A flag whose default is None accepts 'none' to mean None."""

    def parse(text: str) -> Any:
        return None if text.lower() in {"none", ""} else kind(text)

    return parse


def config_from(args: argparse.Namespace) -> SimConfig:
    names = [field.name for field in msgspec.structs.fields(SimConfig)]
    return SimConfig(**{name: getattr(args, name) for name in names})


async def serve(cluster: SimCluster) -> None:
    try:
        await cluster.start()
    except OSError:
        await cluster.close()  # replicas that did listen stop again
        raise
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
        # Announced only once health answers 503, so a supervisor reading this line can rely on it.
        cluster.start_draining()
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
    try:
        runner(serve(cluster))
    except OSError as exc:  # a port in use, an address not on this machine
        print(
            f"warmgate sim: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0
