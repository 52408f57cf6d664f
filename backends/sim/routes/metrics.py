"""GET /metrics (only with --enable-metrics): Prometheus text with SGLang's `sglang:` names."""

from __future__ import annotations

from aiohttp import web

from backends.sim.replica import Replica
from backends.sim.routes import intake

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(replica: Replica) -> str:
    config, scheduler, telemetry = replica.config, replica.scheduler, replica.telemetry
    model = config.served_name.replace("\\", "\\\\").replace('"', '\\"')
    base = f'model_name="{model}",engine_type="unified"'
    engine = f'{base},tp_rank="0",pp_rank="0",moe_ep_rank="0"'
    lines: list[str] = []

    def gauge(name: str, help_text: str, value: float) -> None:
        lines.extend(
            (
                f"# HELP sglang:{name} {help_text}",
                f"# TYPE sglang:{name} gauge",
                f"sglang:{name}{{{engine}}} {float(value)}",
            )
        )

    def counter(name: str, help_text: str, value: float, labels: str) -> None:
        lines.extend(
            (
                f"# HELP sglang:{name} {help_text}",
                f"# TYPE sglang:{name} counter",
                f"sglang:{name}{{{labels}}} {float(value)}",
            )
        )

    gauge("num_running_reqs", "The number of running requests.", scheduler.num_running)
    gauge("num_queue_reqs", "The number of requests in the waiting queue.", scheduler.num_waiting)
    gauge("token_usage", "The token usage.", scheduler.used_tokens / config.kv_tokens)
    gauge("num_used_tokens", "The number of used tokens.", scheduler.used_tokens)
    gauge("cache_hit_rate", "The prefix cache hit rate.", telemetry.cache_hit_rate)
    gauge(
        "gen_throughput",
        "The generation throughput (token/s).",
        scheduler.last_step_tokens_per_s if scheduler.busy else 0.0,
    )
    gauge(
        "max_total_num_tokens",
        "Maximum total number of tokens in the KV cache pool.",
        config.kv_tokens,
    )
    gauge("utilization", "The utilization.", 1.0 if scheduler.busy else 0.0)
    counter(
        "prompt_tokens_total",
        "Number of prefill tokens processed.",
        telemetry.prompt_tokens,
        f'{base},is_streaming="false"',
    )
    counter(
        "generation_tokens_total",
        "Number of generation tokens processed.",
        telemetry.generation_tokens,
        f'{base},is_streaming="false"',
    )
    counter(
        "cached_tokens_total",
        "Number of cached prompt tokens by source (device/host/storage).",
        telemetry.cached_tokens,
        f'{base},cache_source="device"',
    )
    counter(
        "num_requests_total",
        "Number of requests processed.",
        telemetry.requests_completed,
        f'{base},is_streaming="false"',
    )
    counter("num_aborted_requests_total", "Number of requests aborted.", telemetry.aborted, engine)
    for name, help_text, histogram, labels in (
        (
            "time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            telemetry.ttft,
            f'{base},is_streaming="false"',
        ),
        (
            "inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            telemetry.itl,
            base,
        ),
        (
            "e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds",
            telemetry.e2e,
            f'{base},is_streaming="false"',
        ),
    ):
        lines += [f"# HELP sglang:{name} {help_text}", f"# TYPE sglang:{name} histogram"]
        lines += histogram.render(f"sglang:{name}", labels)
    return "\n".join(lines) + "\n"


async def metrics(request: web.Request) -> web.Response:
    body = render(intake.replica_of(request)).encode()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
