"""What this CPU can do for inference: the instruction sets that change speed and numbers.

Results move with these features, not only speeds: int8 products on x86 without VNNI go through 16-bit
intermediates that saturate (onnxruntime's u8 x s8 kernels), bf16 exists natively only with AVX512-BF16
or AMX. Every benchmark and eval output records them beside the model, so numbers from different machines
are never compared blind.
"""
from __future__ import annotations

import functools
import platform

# /proc/cpuinfo flag -> the name reported; VNNI comes as AVX512-VNNI (Cascade Lake on, Zen 4) or as the
# VEX-encoded AVX-VNNI (Alder Lake, Zen 5)
FEATURES = {"avx2": ("avx2",), "avx512f": ("avx512f",), "vnni": ("avx512_vnni", "avx_vnni"),
            "avx512_bf16": ("avx512_bf16",), "amx": ("amx_tile",)}
# numpy's names for the same flags, where /proc/cpuinfo is not there (macOS, Windows)
X86 = ("x86_64", "amd64", "i386", "i686")
_NUMPY_NAMES = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni", "AVX512BF16": "avx512_bf16"}


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (/proc/cpuinfo); numpy's view of them elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(next((line for line in f if line.startswith("flags")), "").split(":", 1)[-1].split())
    except OSError:
        pass
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as found
    except ImportError:
        return frozenset()
    return frozenset(name for key, name in _NUMPY_NAMES.items() if found.get(key))


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.processor() or platform.machine())
    except OSError:
        return platform.processor() or platform.machine()


def is_x86() -> bool:
    return platform.machine().lower() in X86


def cpu_features() -> dict:
    """{"model": ..., "arch": ..., "avx2": bool, "avx512f": bool, "vnni": bool, "avx512_bf16": bool,
    "amx": bool}: what benchmark and eval outputs record beside each number."""
    flags = cpu_flags()
    return {"model": cpu_model(), "arch": platform.machine(),
            **{name: any(f in flags for f in aliases) for name, aliases in FEATURES.items()}}


def feature_summary(features: dict | None = None) -> str:
    """One line for a report: `AMD EPYC (x86_64): AVX2, no AVX-512, no VNNI, no BF16, no AMX`."""
    f = features or cpu_features()
    if f.get("arch", "").lower() not in X86:
        return f"{f.get('model')} ({f.get('arch')})"
    shown = [("avx2", "AVX2"), ("avx512f", "AVX-512"), ("vnni", "VNNI"), ("avx512_bf16", "BF16"), ("amx", "AMX")]
    return f"{f.get('model')} ({f.get('arch')}): " + ", ".join(
        label if f.get(key) else f"no {label}" for key, label in shown)


def int8_saturates() -> bool:
    """True where onnxruntime's int8 (u8 x s8) products add pairs in 16 bits that can saturate: x86 CPUs
    without VNNI. Weights quantized to 7 bits (reduce_range) keep those sums in range there."""
    return is_x86() and not cpu_features()["vnni"]
