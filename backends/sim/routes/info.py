"""GET /model_info, /server_info (and their deprecated /get_* names) and /v1/loads."""

from __future__ import annotations

import datetime
import time

from aiohttp import web

from warmgate.backends.sim.config import SGLANG_VERSION
from warmgate.backends.sim.errors import flat_error
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.wire import encode

LOAD_SECTIONS = frozenset({"core", "memory", "spec", "lora", "disagg", "queues", "all"})
TP_SIZE = 8  # the default config describes a TP8 deployment


async def model_info(request: web.Request) -> web.Response:
    config = intake.replica_of(request).config
    body = {
        "model_path": config.model,
        "served_model_name": config.served_name,
        "tokenizer_path": config.model,
        "is_generation": True,
        "preferred_sampling_params": None,
        "weight_version": "default",
        "load_format": "auto",
        "reasoning_parser": config.reasoning_parser,
        "tool_call_parser": config.tool_call_parser,
        "disaggregation_mode": "null",
        "has_image_understanding": False,
        "has_audio_understanding": False,
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
    }
    return intake.json_response(encode(body))


async def server_info(request: web.Request) -> web.Response:
    replica = intake.replica_of(request)
    config = replica.config
    args = {
        "model_path": config.model,
        "tokenizer_path": config.model,
        "served_model_name": config.served_name,
        "host": replica.host,
        "port": replica.port,
        "tp_size": TP_SIZE,
        "dp_size": 1,
        "pp_size": 1,
        "context_length": config.context_length,
        "max_running_requests": config.max_running_requests,
        "max_queued_requests": config.max_queued_requests,
        "max_total_tokens": config.kv_tokens,
        "chunked_prefill_size": config.chunked_prefill_size,
        "max_prefill_tokens": 16384,
        "page_size": config.page_size,
        "schedule_policy": "fcfs",
        "enable_metrics": config.enable_metrics,
        "enable_cache_report": config.enable_cache_report,
        "reasoning_parser": config.reasoning_parser,
        "tool_call_parser": config.tool_call_parser,
        "allow_auto_truncate": config.allow_auto_truncate,
        "max_total_num_tokens": config.kv_tokens,
        "max_req_input_len": config.context_length - 1,
        "launch_command": f"warmgate sim --model {config.model}",
        "startup_time": replica.startup_time,
        "internal_states": [_internal_state(replica)],
        "version": SGLANG_VERSION,
        "frontend": "python",
    }
    return intake.json_response(encode(args))


def _internal_state(replica: Replica) -> dict[str, object]:
    scheduler = replica.scheduler
    return {
        "last_gen_throughput": scheduler.last_step_tokens_per_s,
        "memory_usage": {"token_capacity": replica.config.kv_tokens},
        "num_running_reqs": scheduler.num_running,
        "num_waiting_reqs": scheduler.num_waiting,
    }


def load_snapshot(replica: Replica) -> dict[str, object]:
    """The core keys of managers/load_snapshot.LoadSnapshot, in its field order."""
    scheduler, config = replica.scheduler, replica.config
    used = scheduler.used_tokens
    moments = scheduler.decode_moments
    return {
        "timestamp": time.time(),
        "dp_rank": 0,
        "num_running_reqs": scheduler.num_running,
        "num_waiting_reqs": scheduler.num_waiting,
        "num_waiting_uncached_tokens": scheduler.num_waiting_uncached_tokens,
        "num_used_tokens": used,
        "num_total_tokens": used + replica.scheduler.cache.tokens,
        "num_active_tokens": used,
        "num_prealloc_ready_tokens": 0,
        "max_total_num_tokens": config.kv_tokens,
        "max_running_requests": config.max_running_requests,
        "token_usage": round(used / config.kv_tokens, 4),
        "gen_throughput": round(scheduler.last_step_tokens_per_s, 2) if scheduler.busy else 0.0,
        "cache_hit_rate": round(replica.telemetry.cache_hit_rate, 4),
        "utilization": 1.0 if scheduler.busy else 0.0,
        "total_prefill_uncached_tokens": replica.telemetry.prefill_tokens_computed,
        "total_prefill_busy_us": scheduler.prefill_busy_us,
        # LoadSnapshot.decode_moments: always sent, null until a decode step has run
        "decode_moments": list(moments) if moments[0] > 0 else None,
    }


async def loads(request: web.Request) -> web.Response:
    replica = intake.replica_of(request)
    raw = request.query.get("include")
    include = {s.strip() for s in raw.split(",")} if raw else None
    if include is not None and not include <= LOAD_SECTIONS:
        message = (
            f"Invalid include sections: {include - LOAD_SECTIONS}. "
            f"Valid options: {sorted(LOAD_SECTIONS)}"
        )
        return intake.json_response(flat_error(message, "400", 400), 400)
    load = load_snapshot(replica)
    everything = include is None or "all" in include
    if everything or (include is not None and "queues" in include):
        load["queues"] = {
            "waiting": replica.scheduler.num_waiting,
            "grammar": 0,
            "paused": 0,
            "retracted": 0,
            "prealloc_ready": 0,
        }
    if request.query.get("format") == "prometheus":
        lines = []
        for key, value in load.items():
            if key != "dp_rank" and isinstance(value, (int, float)):
                lines += [f"# TYPE sglang_{key} gauge", f'sglang_{key}{{dp_rank="0"}} {value}']
        return web.Response(
            text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8"
        )
    body = {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        "version": SGLANG_VERSION,
        "accelerator": "NVIDIA H100 80GB HBM3 (simulated)",
        "num_accelerators": TP_SIZE,
        "loads": [load],
    }
    return intake.json_response(encode(body))
