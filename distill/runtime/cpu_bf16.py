"""Is bfloat16 worth using on this CPU? Flags say whether it could be; a probe says whether it is.

A CPU's flags (AMX, AVX512-BF16) are necessary but not enough. Some virtual machines advertise AMX yet
hide the CPUID leaf that describes its tile registers, and torch's oneDNN kernels then die with SIGILL
(an illegal instruction kills the process: no exception to catch). And bf16 without AMX can be slower
than float32. So before `dtype=auto` picks bfloat16 on a CPU, a child process runs one transformer-sized
matrix product in both precisions: if it dies, or bf16 is not faster, eager bf16 is not used. A second
child then times the same product compiled by torch.compile (inductor's own GEMM kernels, which set up
AMX's tiles themselves and so run where oneDNN's die): when that is faster, bf16 is used by compiled
teachers (`teacher.compile`, distill/runtime/compiled.py). Where oneDNN's bf16 kernels crash, this process and
its children cap oneDNN below AMX (`ONEDNN_MAX_CPU_ISA`) so no bf16 op left to it can kill them.

The verdict is kept in the environment (`DISTILL_CPU_BF16`), so worker processes started afterwards
inherit it instead of probing again; setting it yourself skips the probe: `1` (use bf16 under
`dtype=auto`), `0` (float32), `crash` (eager bf16 kernels crash here: an explicit bfloat16 is refused
unless compiled), and `compiled` (bf16 is faster compiled), comma-joined (`0,crash,compiled`).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from . import cpuinfo

log = logging.getLogger(__name__)

ENV = "DISTILL_CPU_BF16"
SPEEDUP_NEEDED = 1.1  # bf16 must beat float32 by this much to be chosen: it also costs precision

# One [512 x 768] x [768 x 3072] product (a BERT-base feed-forward on 512 tokens), each precision timed
# after a warm-up, on one thread (as a label worker runs); `{bf16}` is the bf16 layer, run under `{context}`.
_PROBE = """
import json, time, torch
import torch._inductor.config as inductor
torch.set_num_threads(1)
x, layer = torch.randn(512, 768), torch.nn.Linear(768, 3072)
def seconds(m, a):
    with {context}:
        m(a)
        start = time.perf_counter()
        for _ in range(5):
            m(a)
        return time.perf_counter() - start
fp32 = seconds(layer, x)
print(json.dumps({{"float32": fp32, "bfloat16": seconds({bf16}, x.to(torch.bfloat16))}}))
"""
PROBE = _PROBE.format(context="torch.inference_mode()", bf16="layer.to(torch.bfloat16)")

# How compiled teachers (distill/runtime/compiled.py) have inductor build their graphs: its own GEMM kernels
# (CPP; aten where it has none), chosen by timing, with the weights frozen into the graph.
INDUCTOR_OPTIONS = {"max_autotune": True, "freezing": True, "max_autotune_gemm_backends": "CPP,ATEN"}
# oneDNN's best ISA without AMX: what its bf16 ops get where the AMX kernels crash.
ONEDNN_CAP = ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")

# The same product, bf16 compiled as a compiled teacher compiles.
COMPILED_PROBE = _PROBE.format(context=f"torch.no_grad(), inductor.patch(**{INDUCTOR_OPTIONS!r})",
                               bf16="torch.compile(layer.to(torch.bfloat16), dynamic=True)")


@dataclass(frozen=True)
class Verdict:
    use: bool  # pick bfloat16 under dtype=auto
    crashes: bool  # eager bfloat16 kernels (oneDNN's) kill the process here
    why: str
    compiled: bool = False  # bfloat16 compiled by torch.compile is faster here (compiled teachers use it)


def cpu_has_bf16_flags() -> bool:
    """True on CPUs that advertise native bfloat16 matrix instructions (AMX or AVX512-BF16)."""
    flags = cpuinfo.cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def from_env(value: str) -> Verdict | None:
    """The verdict a `DISTILL_CPU_BF16` value states; None when it states none."""
    tokens = {token.strip() for token in value.lower().split(",")} - {""}
    if not tokens or not tokens <= {"1", "0", "crash", "compiled"}:
        return None
    why = f"{ENV}={value}" + (": bfloat16 kernels crashed on this CPU in an earlier probe" if "crash" in tokens else "")
    return Verdict("1" in tokens, "crash" in tokens, why, "compiled" in tokens)


def to_env(verdict: Verdict) -> str:
    return ",".join(["1" if verdict.use else "0"] + ["crash"] * verdict.crashes + ["compiled"] * verdict.compiled)


def cap_onednn(result: Verdict) -> None:
    """Where eager bf16 crashes, keep oneDNN (in this process and those it starts) below AMX, unless
    the user chose its ISA. It takes effect if no oneDNN kernel was built yet (they are built lazily)."""
    if result.crashes and ONEDNN_CAP[0] not in os.environ:
        os.environ[ONEDNN_CAP[0]] = ONEDNN_CAP[1]


def run_probe(code: str = PROBE, timeout: float = 300, env: dict | None = None) -> Verdict:
    """Time float32 against bfloat16 in a child Python (its death cannot take this process with it)."""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired:
        return Verdict(False, False, f"the bfloat16 probe took over {timeout:.0f} s")
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return Verdict(False, True,
                       f"bfloat16 kernels died with {name} in a probe process although the CPU advertises them "
                       f"(some VMs hide AMX's tile-info CPUID leaf; ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 "
                       f"runs bf16 without AMX)")
    try:
        seconds = json.loads(done.stdout.strip().splitlines()[-1])
        speedup = seconds["float32"] / seconds["bfloat16"]
    except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(False, False, f"the bfloat16 probe failed (exit {done.returncode}: {tail})")
    return Verdict(speedup >= SPEEDUP_NEEDED, False,
                   f"bfloat16 matrix products run at {speedup:.2f}x float32's speed here")


@functools.lru_cache(maxsize=None)
def verdict() -> Verdict:
    """This CPU's bfloat16 verdict: from DISTILL_CPU_BF16 if set, else no flags (no probe), else the probe."""
    result = from_env(os.environ.get(ENV, ""))
    if result is None and not cpu_has_bf16_flags():
        result = Verdict(False, False, "the CPU has no AMX or AVX512-BF16")
    elif result is None:
        log.info("probing bfloat16 on this CPU (once; %s=1 or 0 skips it)", ENV)
        result = probe()
        (log.warning if result.crashes else log.info)("bfloat16 on this CPU: %s; %s", result.why, (
            "using it" if result.use else "compiled teachers use it (teacher.compile)" if result.compiled
            else "using float32"))
    os.environ[ENV] = to_env(result)  # worker processes started from here on inherit the answer
    cap_onednn(result)
    return result


def probe() -> Verdict:
    """Eager bf16 timed against float32; where it is not faster (or crashes), bf16 compiled."""
    eager = run_probe()
    if eager.use:
        return eager
    compiled = run_probe(COMPILED_PROBE, env=dict([ONEDNN_CAP]) if eager.crashes else None)
    return Verdict(False, eager.crashes, f"{eager.why}; compiled by torch.compile, {compiled.why}",
                   compiled.use)
