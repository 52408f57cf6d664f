"""What the task files are checked against: model sizes, KV cache per token, GPU memory, and
the memory SGLang 0.5.23 keeps back from the weights and the KV cache.

The fit rule: on every GPU of a shape, SGLang's static pool (`mem_fraction_static` of the GPU's
memory) must hold that GPU's share of the weights plus the KV cache of one request at the
model's full advertised context. `mem_fraction_static` is SGLang's own default, computed here
the way `handle_gpu_memory_settings` (sglang/srt/arg_groups/memory_hook.py) computes it without
post-capture sizing (off by default): reserved MB = 512 + 1.5 x max(chunked prefill, 2048)
+ 1024 x TP/8 + the CUDA-graph reserve (2 x decode max batch; with attention DP also
3 x max batch x DP, and 1.5 x more above a batch of 300; prefill graphs: 8 MB a captured size,
1.5 GB for MLA), at least 10 GB on GPUs above 60 GB; chunked prefill and decode max batch come
from the GPU's memory class as SGLang sets them.

Weights are the checkpoint sizes on the Hugging Face Hub (bf16 unless noted); KV per token is
2 (K and V) x layers x KV heads x head dim x 2 bytes, the KV heads split over TP (replicated
when TP exceeds them); DeepSeek's MLA keeps one 576-wide latent per layer (plus V3.2's 128-wide
FP8 indexer key) on every attention rank.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
MB = 1024**2


@dataclass(frozen=True, slots=True)
class ModelFacts:
    weights_gb: float  # checkpoint size in GB (10^9 bytes)
    context_tokens: int  # the advertised context (what the task lets a request use)
    attention_heads: int
    layers: int
    kv_heads: int = 0
    head_dim: int = 0
    mla_bytes_per_token_layer: int = 0  # DeepSeek MLA: the latent (+ indexer key) per layer
    # Weights every attention-DP rank holds whole (DeepSeek's attention), GB.
    replicated_gb: float = 0.0
    attention_dp: bool = False

    def kv_bytes_per_token(self, tp: int) -> float:
        if self.mla_bytes_per_token_layer:
            return float(self.mla_bytes_per_token_layer * self.layers)
        heads_per_gpu = max(1.0, self.kv_heads / tp)
        return 2 * self.layers * heads_per_gpu * self.head_dim * 2

    def weights_per_gpu_bytes(self, tp: int) -> float:
        sharded = self.weights_gb - self.replicated_gb
        replicated = self.replicated_gb if self.attention_dp else self.replicated_gb / tp
        return (sharded / tp + replicated) * 1e9


MODELS = {
    "llama-3-3-70b-instruct": ModelFacts(141.0, 131_072, 64, 80, kv_heads=8, head_dim=128),
    "qwen3-32b": ModelFacts(65.5, 40_960, 64, 64, kv_heads=8, head_dim=128),
    "deepseek-r1-distill-llama-70b": ModelFacts(141.0, 131_072, 64, 80, kv_heads=8, head_dim=128),
    "mistral-7b-instruct": ModelFacts(14.5, 32_768, 32, 32, kv_heads=8, head_dim=128),
    # FP8 checkpoint, 685B parameters; ~11 GB of attention weights every DP rank holds.
    "deepseek-v3-2": ModelFacts(
        690.0,
        163_840,
        128,
        61,
        mla_bytes_per_token_layer=576 * 2 + 132,
        replicated_gb=11.0,
        attention_dp=True,
    ),
    "qwen3-embedding-4b": ModelFacts(8.0, 32_768, 32, 36, kv_heads=8, head_dim=128),
    "whisper-large-v3": ModelFacts(3.1, 448, 20, 32, kv_heads=20, head_dim=64),
}
WEIGHTS_GB = {key: facts.weights_gb for key, facts in MODELS.items()}
ATTENTION_HEADS = {key: facts.attention_heads for key, facts in MODELS.items()}

# Usable memory per device as the driver reports it (MiB): what SGLang's heuristics see.
GPU_MEMORY_MIB = {
    "A10": 23_028,
    "A10G": 23_028,
    "L4": 23_034,
    "L40S": 46_068,
    "A100": 40_960,
    "A100-80GB": 81_920,
    "H100": 81_559,
    "H200": 143_771,
    "B200": 183_359,
}

# A replica must be up within its readiness probe's initial delay: 10 minutes for the image,
# model load and CUDA graph capture, plus the weights at 250 MB/s from the Hub (DeepGEMM's JIT
# precompile adds its own, see the task file).
STARTUP_S = 600
DOWNLOAD_GB_PER_S = 0.25
# Disk: the SGLang image (~30 GB) and room to spare, besides the weights.
DISK_OVERHEAD_GB = 60


def _memory_class(gpu_mib: int, tp: int) -> tuple[int, int]:
    """(chunked prefill size, decode CUDA-graph max batch) as SGLang picks them."""
    if gpu_mib < 20 * 1024:
        return 2048, 8
    if gpu_mib < 35 * 1024:
        return 4096, 48 if tp < 4 else 160
    if gpu_mib < 60 * 1024:
        return 4096, 32 if tp < 4 else 160
    if gpu_mib < 160 * 1024:
        return 8192, 256 if tp < 4 else 512
    return 16384, 512


def _prefill_graph_sizes(max_bs: int) -> int:
    sizes = (
        list(range(4, 33, 4))
        + list(range(48, 257, 16))
        + list(range(288, 513, 32))
        + list(range(576, 1025, 64))
        + list(range(1280, 4097, 256))
        + list(range(4608, max_bs + 1, 512))
    )
    return len([s for s in sizes if s <= max_bs])


def reserved_mib(model: ModelFacts, gpu_mib: int, tp: int) -> float:
    chunked, max_bs = _memory_class(gpu_mib, tp)
    reserved = 512 + max(chunked, 2048) * 1.5 + tp / 8 * 1024 + max_bs * 2
    if model.attention_dp:
        reserved += max_bs * tp * 3 + (max_bs * tp * 1.5 if max_bs > 300 else 0)
    reserved += 1.5 * 1024 if model.mla_bytes_per_token_layer else _prefill_graph_sizes(chunked) * 8
    if gpu_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return reserved


def mem_fraction_static(model: ModelFacts, accelerator: str, tp: int) -> float:
    gpu_mib = GPU_MEMORY_MIB[accelerator]
    return round((gpu_mib - reserved_mib(model, gpu_mib, tp)) / gpu_mib, 3)


def kv_room_tokens(model_key: str, accelerator: str, count: int, nodes: int = 1) -> int:
    """Tokens of KV cache left per attention rank once the weights are loaded."""
    model = MODELS[model_key]
    tp = count * nodes
    pool = GPU_MEMORY_MIB[accelerator] * MB * mem_fraction_static(model, accelerator, tp)
    room = pool - model.weights_per_gpu_bytes(tp)
    return max(0, int(room // model.kv_bytes_per_token(tp)))


def holds(model_key: str, accelerator: str, count: int, nodes: int = 1) -> bool:
    """The weights plus one request at the full advertised context fit SGLang's static pool."""
    return kv_room_tokens(model_key, accelerator, count, nodes) >= MODELS[model_key].context_tokens
