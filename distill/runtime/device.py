"""Pick the compute device and precision: cuda, then mps, then cpu; half precision on GPUs, and on CPUs
where bfloat16 proves faster (cpu_bf16)."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import DistillError
from . import cpu_bf16

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# teacher.batch_size / max_tokens left null: a CPU does best with small batches, whose activations stay in
# its caches (one thread, AG News pairs of ~60 tokens, mean of 3-4 runs: compiled bf16 1,200 pairs in 23.4 s
# at 4,096 padded tokens a batch, 19.2 s at 1,024; eager float32 600 pairs 23.9 s and 20.8 s); a GPU sits
# idle on them (H100, SST-2 pairs: 64 a batch labels 981 texts/s, 1,024 a batch 3,494; README, "On a GPU")
CPU_BATCH, CPU_MAX_TOKENS, GPU_BATCH, GPU_MAX_TOKENS = 64, 1024, 512, 32768
# A student predicting on a CPU (torch or onnxruntime): batches of at most 256 padded tokens. One call of 32 SST-2
# sentences padded to its longest costs far more than the same texts sorted by length in small batches (AMD EPYC,
# AVX2, 2 cores, 256 dev sentences in calls of 32, texts/s: MiniLM int8 ONNX 55 uncapped, 70 at 1,024 tokens,
# 83 at 512, 88-92 at 256, 95 at 128; DeBERTa 6-layer int8 ONNX 53 uncapped, 89 at 256, 79 at 64; MiniLM torch
# 53 -> 72 at 256). The NLI teacher keeps 1,024: it is slower at 256 (16.0 against 16.9 texts/s).
STUDENT_CPU_MAX_TOKENS = 256


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; anything else must be a device torch can use here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise DistillError(f"device '{name}' is not a torch device (use auto, cpu, cuda, cuda:N or mps)") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DistillError(f"device '{name}' was asked for but no CUDA GPU is visible; use device=auto or cpu")
    return device


def resolve_dtype(name: str, device: torch.device, compiled: bool = False) -> torch.dtype:
    """`auto`: bfloat16 on GPUs that support it, float16 on older GPUs, bfloat16 on CPUs where it runs
    natively and faster than float32 (see cpu_bf16; for a `compiled` model, faster once compiled),
    float32 elsewhere. An explicit bfloat16 on a CPU whose eager bf16 kernels crash is refused with the
    reason instead of killing the process, unless the model is compiled (distill/runtime/compiled.py)."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        verdict = cpu_bf16.verdict()
        return torch.bfloat16 if verdict.use or (compiled and verdict.compiled) else torch.float32
    if name not in DTYPES:
        raise DistillError(f"dtype '{name}' is not one of auto, {', '.join(DTYPES)}")
    if name == "bfloat16" and device.type == "cpu" and not compiled and cpu_bf16.verdict().crashes:
        raise DistillError(f"dtype 'bfloat16' cannot run on this CPU: {cpu_bf16.verdict().why}; use float32, "
                           f"auto, or compile the teacher (teacher.compile=true)")
    return DTYPES[name]


def teacher_batch(batch_size: int | None, max_tokens: int | None, device: torch.device) -> tuple[int, int | None]:
    """(batch size, padded-token cap) of a teacher: the configured ones, or where teacher.batch_size is null
    the device's own: 64 on a CPU, capped at 1,024 padded tokens (cache-sized; also, a batch that holds one long pair
    among short ones, as a small subset sorted by length can, is mostly padding); on a GPU 512, capped at 32,768. A
    max_tokens that is set stands."""
    if batch_size is not None:
        if batch_size < 1:
            raise DistillError(f"teacher.batch_size must be >= 1 (or null: the device's default), got {batch_size}")
        return batch_size, max_tokens
    if device.type == "cpu":
        return CPU_BATCH, CPU_MAX_TOKENS if max_tokens is None else max_tokens
    return GPU_BATCH, GPU_MAX_TOKENS if max_tokens is None else max_tokens


def world_size() -> int:
    """Processes in this training run: WORLD_SIZE as torchrun / accelerate launch set it, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the one process of a plain run and in rank 0 of a torchrun / accelerate launch run."""
    return int(os.environ.get("RANK", "0")) == 0


def batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, max_tokens: int | None):
    """Consecutive slices of `order` (longest first) of at most `batch_size` inputs (texts, or an NLI teacher's
    pairs) and, when `max_tokens` is set, at most that many padded tokens: short inputs travel in bigger batches."""
    start = 0
    while start < len(order):
        size = batch_size
        if max_tokens:
            # The first input of a slice is its longest, so it sets the padded length.
            size = max(1, min(batch_size, max_tokens // int(lengths[order[start]])))
        yield order[start:start + size]
        start += size
