"""What the task files are checked against: published weight sizes and GPU memory.

Weights are the checkpoint sizes on the Hugging Face Hub (bf16 unless noted); GPU memory is
the usable HBM per device. A model fits when its weights take at most `WEIGHTS_SHARE` of the
GPUs' memory, leaving the rest for the KV cache, activations and CUDA graphs (SGLang's
`--mem-fraction-static` reserves about 0.8-0.9 of memory for weights plus KV cache).
"""

from __future__ import annotations

WEIGHTS_SHARE = 0.8

WEIGHTS_GB = {
    "llama-3-3-70b-instruct": 141.0,
    "qwen3-32b": 65.5,
    "deepseek-r1-distill-llama-70b": 141.0,
    "mistral-7b-instruct": 14.5,
    "deepseek-v3-2": 690.0,  # FP8 checkpoint, 685B parameters
    "qwen3-embedding-4b": 8.0,
    "whisper-large-v3": 3.1,
}

# Attention heads (config.json `num_attention_heads`): tensor parallelism must divide them.
ATTENTION_HEADS = {
    "llama-3-3-70b-instruct": 64,
    "qwen3-32b": 64,
    "deepseek-r1-distill-llama-70b": 64,
    "mistral-7b-instruct": 32,
    "deepseek-v3-2": 128,
    "qwen3-embedding-4b": 32,
    "whisper-large-v3": 20,
}

GPU_MEMORY_GB = {
    "A10": 24,
    "A10G": 24,
    "L4": 24,
    "L40S": 48,
    "A100": 40,
    "A100-80GB": 80,
    "H100": 80,
    "H200": 141,
    "B200": 180,
}

# A replica must be up within its readiness probe's initial delay: 10 minutes for the image,
# model load and CUDA graph capture, plus the weights at 250 MB/s from the Hub.
STARTUP_S = 600
DOWNLOAD_GB_PER_S = 0.25
# Disk: the SGLang image (~30 GB) and room to spare, besides the weights.
DISK_OVERHEAD_GB = 60


def holds(model_key: str, accelerator: str, count: int, nodes: int) -> bool:
    return WEIGHTS_GB[model_key] <= WEIGHTS_SHARE * GPU_MEMORY_GB[accelerator] * count * nodes
