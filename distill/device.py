"""Pick the compute device and precision: cuda, then mps, then cpu; half precision only on GPUs."""
from __future__ import annotations

import os

import torch

from .errors import DistillError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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


def cpu_has_bf16() -> bool:
    """True on CPUs with native bfloat16 matrix instructions (AMX or AVX512-BF16); elsewhere bf16 is
    emulated and slower than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on GPUs that support it, float16 on older GPUs, bfloat16 on CPUs with AMX or
    AVX512-BF16, float32 elsewhere."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    if name not in DTYPES:
        raise DistillError(f"dtype '{name}' is not one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def world_size() -> int:
    """Processes in this training run: WORLD_SIZE as torchrun / accelerate launch set it, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the one process of a plain run and in rank 0 of a torchrun / accelerate launch run."""
    return int(os.environ.get("RANK", "0")) == 0
