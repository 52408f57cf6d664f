"""GET /metrics (only with --enable-metrics): Prometheus text with SGLang's `sglang:` names.

Scheduler gauges carry the engine labels (model_name, engine_type, tp_rank, pp_rank,
moe_ep_rank); finished-request counters and the TTFT / e2e histograms carry model_name,
engine_type and is_streaming, with a series only for label values seen, as prometheus_client
renders them.
"""

from __future__ import annotations

from aiohttp import web

from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.telemetry import Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(replica: Replica) -> str:
    config, scheduler, telemetry = replica.config, replica.scheduler, replica.telemetry
    model = config.served_name.replace("\\", "\\\\").replace('"', '\\"')
    base = f'model_name="{model}",engine_type="unified"'
    engine = f'{base},tp_rank="0",pp_rank="0",moe_ep_rank="0"'
    lines: list[str] = []

    def head(name: str, help_text: str, kind: str) -> None:
        lines.extend((f"# HELP sglang:{name} {help_text}", f"# TYPE sglang:{name} {kind}"))

    def gauge(name: str, help_text: str, value: float) -> None:
        head(name, help_text, "gauge")
        lines.append(f"sglang:{name}{{{engine}}} {float(value)}")

    busy = scheduler.busy
    gauge("num_running_reqs", "The number of running requests.", scheduler.num_running)
    gauge("num_queue_reqs", "The number of requests in the waiting queue.", scheduler.num_waiting)
    gauge("token_usage", "The token usage.", scheduler.used_tokens / config.kv_tokens)
    gauge("num_used_tokens", "The number of used tokens.", scheduler.used_tokens)
    gauge("cache_hit_rate", "The prefix cache hit rate.", telemetry.cache_hit_rate)
    throughput = scheduler.last_step_tokens_per_s if busy else 0.0
    gauge("gen_throughput", "The generation throughput (token/s).", throughput)
    capacity_help = "Maximum total number of tokens in the KV cache pool."
    gauge("max_total_num_tokens", capacity_help, config.kv_tokens)
    gauge("utilization", "The utilization.", 1.0 if busy else 0.0)

    series = [
        (f'{base},is_streaming="{str(s).lower()}"', telemetry.series[s]) for s in (False, True)
    ]
    seen = [(labels, one) for labels, one in series if one.requests]

    def counter(name: str, help_text: str, value_of: str) -> None:
        head(name, help_text, "counter")
        for labels, one in seen:
            lines.append(f"sglang:{name}{{{labels}}} {float(getattr(one, value_of))}")

    counter("prompt_tokens_total", "Number of prefill tokens processed.", "prompt_tokens")
    counter(
        "generation_tokens_total", "Number of generation tokens processed.", "generation_tokens"
    )
    counter("num_requests_total", "Number of requests processed.", "requests")
    head(
        "cached_tokens_total",
        "Number of cached prompt tokens by source (device/host/storage).",
        "counter",
    )
    lines.append(
        f'sglang:cached_tokens_total{{{base},cache_source="device"}} '
        f"{float(telemetry.cached_tokens)}"
    )
    head("num_aborted_requests_total", "Number of requests aborted.", "counter")
    lines.append(f"sglang:num_aborted_requests_total{{{engine}}} {float(telemetry.aborted)}")

    def histogram(name: str, help_text: str, pick: str) -> None:
        head(name, help_text, "histogram")
        for labels, one in seen:
            chosen: Histogram = getattr(one, pick)
            lines.extend(chosen.render(f"sglang:{name}", labels))

    histogram("time_to_first_token_seconds", "Histogram of time to first token in seconds.", "ttft")
    head("inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", "histogram")
    lines.extend(telemetry.itl.render("sglang:inter_token_latency_seconds", base))
    histogram(
        "e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", "e2e"
    )
    return "\n".join(lines) + "\n"


async def metrics(request: web.Request) -> web.Response:
    body = render(intake.replica_of(request)).encode()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
