"""The simulator's settings: one frozen Struct whose every field is a command-line flag.

Defaults describe Llama-3.x 70B BF16 served by SGLang with TP8 on H100s (the derivations are in
the README section "The SGLang simulator" and the shared performance reference, section 6).
"""

from __future__ import annotations

import msgspec

# SGLang 0.5.x server defaults (srt/arg_groups/fields/*, srt/environ.py).
SGLANG_VERSION = "0.5.23"
DEFAULT_PORT = 30000
HEALTH_CHECK_TIMEOUT_S = 20.0  # SGLANG_HEALTH_CHECK_TIMEOUT
DEFAULT_MAX_NEW_TOKENS = 128  # SamplingParams.max_new_tokens when a request names none


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that shapes one simulated SGLang replica (a cluster's replicas share it, but
    for their network delay, which SimCluster can set per replica)."""

    # --- identity and serving flags (SGLang's own flags of the same names)
    model: str = "meta-llama/Llama-3.3-70B-Instruct"  # --model-path; also the served name
    served_model_name: str | None = None  # --served-model-name (defaults to `model`)
    api_key: str | None = None  # --api-key: Bearer check on all but /health*, /ready, /metrics
    enable_metrics: bool = False  # --enable-metrics: expose GET /metrics
    enable_cache_report: bool = False  # --enable-cache-report: prompt_tokens_details.cached_tokens
    reasoning_parser: str | None = None  # --reasoning-parser (deepseek-r1 | qwen3)
    tool_call_parser: str | None = "llama3"  # --tool-call-parser (ids stay call_<24 hex>)
    stream_include_usage_default: bool = False  # --stream-response-default-include-usage
    allow_auto_truncate: bool = False  # --allow-auto-truncate
    context_length: int = 131_072  # --context-length (Llama-3.x config.json)
    embedding_dim: int = 1024  # width of /v1/embeddings vectors
    keep_alive_s: float = (
        5.0  # idle keep-alive connections closed after (SGLANG_TIMEOUT_KEEP_ALIVE)
    )

    # --- scheduler capacity (SGLang: --max-running-requests, --max-total-tokens, ...)
    max_running_requests: int = 2048
    kv_tokens: int = 1_270_000  # --max-total-tokens: KV cache capacity in tokens
    max_queued_requests: int | None = None  # --max-queued-requests: None = unbounded (SGLang)
    chunked_prefill_size: int = 8192  # --chunked-prefill-size (H100 default)
    page_size: int = 16  # prefix-cache block size in tokens

    # --- latency model (seconds before time_scale; see the README for the sources)
    prefill_tokens_per_s: float = 20_000.0
    prefill_overhead_s: float = 0.030  # fixed cost of one prefill forward pass
    itl_base_s: float = 0.012  # decode step time with an empty batch
    itl_per_running_req_s: float = 0.00008  # added per running request per decode step
    output_tokens_mean: int = 256  # natural answer length when max_tokens does not cut it
    startup_s: float = 0.0  # /health answers 503 this long after start (real 70B: ~150 s)
    time_scale: float = 1.0  # multiplies every delay; 0 runs as fast as possible
    network_delay_ms: float = 0.0  # one-way client network delay: first byte and each chunk
    seed: int = 0  # seeds generated text, answer lengths and fault draws

    # --- faults at start (the same fields can be changed at run time: POST /_sim/faults)
    fail_rate: float = 0.0
    fail_status: int = 500
    hang_before_first_byte: bool = False
    cut_stream_after_tokens: int | None = None
    error_stream_after_tokens: int | None = None
    slow_decode_factor: float = 1.0
    never_ready: bool = False
    unhealthy: bool = False
    refuse_connections: bool = False

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model
