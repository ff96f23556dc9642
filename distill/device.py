"""Pick the compute device and precision: cuda, then mps, then cpu; half precision on GPUs, and on CPUs
where bfloat16 proves faster (cpu_bf16)."""
from __future__ import annotations

import os

import torch

from . import cpu_bf16
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


def resolve_dtype(name: str, device: torch.device, compiled: bool = False) -> torch.dtype:
    """`auto`: bfloat16 on GPUs that support it, float16 on older GPUs, bfloat16 on CPUs where it runs
    natively and faster than float32 (see cpu_bf16; for a `compiled` model, faster once compiled),
    float32 elsewhere. An explicit bfloat16 on a CPU whose eager bf16 kernels crash is refused with the
    reason instead of killing the process, unless the model is compiled (distill/compiled.py)."""
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


def world_size() -> int:
    """Processes in this training run: WORLD_SIZE as torchrun / accelerate launch set it, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the one process of a plain run and in rank 0 of a torchrun / accelerate launch run."""
    return int(os.environ.get("RANK", "0")) == 0
