"""A teacher model compiled for CPU inference (`teacher.compile`): bfloat16 on AMX where eager torch cannot.

torch.compile's inductor backend, with `max_autotune` and frozen weights, writes its own matrix kernels
(the CPP GEMM template): on a CPU with AMX they run on the tile units, and they configure the tiles
themselves. That matters on virtual machines that advertise AMX but hide the CPUID leaf describing the
tiles: there oneDNN's bf16 kernels (what eager torch calls) die with SIGILL, while inductor's run, at
about 2.5x float32's speed on a BERT-sized product (see cpu_bf16). DeBERTa's attention products, which
inductor leaves to aten, run in float32 there (fast_deberta.float32_products), and on such a CPU aten
runs without oneDNN, so nothing reaches the broken kernels; where eager bf16 is fast (cpu_bf16's verdict,
e.g. AVX512-BF16 on an AMD Zen 4), they stay in bf16.

Compiling costs minutes once per process (2-3 on one core for a DeBERTa-v3-xsmall teacher; more again the
first time a longer length range shows up), so `teacher.compile=auto` compiles only a labelling big
enough to repay it (`worth_compiling`); `true` always compiles a CPU teacher, `false` never does.
Shapes are dynamic: one compiled graph serves every batch size and length range it has seen.
"""
from __future__ import annotations

import contextlib
import logging

import torch

from ..errors import DistillError
from . import cpu_bf16

log = logging.getLogger(__name__)

CHOICES = ("auto", "true", "false")
# Below this many (text, hypothesis) pairs a labelling ends sooner in float32 than compiling would take.
MIN_PAIRS = 50_000


def setting(value) -> str:
    """teacher.compile as one of auto | true | false (a YAML/CLI boolean is accepted)."""
    text = str(value).strip().lower()
    if text not in CHOICES:
        raise DistillError(f"teacher.compile '{value}' is not one of {', '.join(CHOICES)}")
    return text


def worth_compiling(value, device: torch.device, n_pairs: int) -> bool:
    """What `auto` means for a labelling of `n_pairs` pairs on `device` (an explicit value stands)."""
    choice = setting(value)
    if choice != "auto":
        return choice == "true"
    if device.type != "cpu" or n_pairs < MIN_PAIRS:
        return False
    verdict = cpu_bf16.verdict()
    if verdict.compiled:
        log.info("teacher.compile=auto: compiling the teacher for %d pairs (bfloat16 is faster on this CPU "
                 "only compiled; teacher.compile=false labels in float32 uncompiled)", n_pairs)
    return verdict.compiled


def enabled(value, device: torch.device) -> bool:
    """Whether a teacher built with teacher.compile=`value` compiles (`auto` unresolved by the label stage: no)."""
    if setting(value) != "true":
        return False
    if device.type != "cpu":
        log.info("teacher.compile applies to CPU teachers; running on %s uncompiled", device)
        return False
    return True


class CompiledModel:
    """`model` (in eval mode, on the CPU) behind torch.compile with inductor's CPU GEMM templates.

    Called like the model, under `torch.no_grad` (frozen weights cannot be inference tensors). The
    inductor settings are applied around every call, not globally, so the rest of the process keeps its
    own; a new shape that needs a recompile gets the same settings."""

    def __init__(self, model: torch.nn.Module):
        # Where oneDNN's AMX kernels crash, whatever aten ops the graph keeps run without oneDNN: capping
        # it (cpu_bf16.cap_onednn) only works before its first kernel, which this process may be past.
        self.onednn = not cpu_bf16.verdict().crashes
        self.model = model
        self.compiled = torch.compile(model, dynamic=True)

    def __call__(self, **inputs):
        import torch._inductor.config as inductor

        rows = len(next(iter(inputs.values())))
        if rows == 1:  # a batch of one is a shape of its own to torch.compile (a recompile): make it two
            inputs = {name: value.expand(2, *value.shape[1:]) for name, value in inputs.items()}
        no_onednn = contextlib.nullcontext() if self.onednn else torch.backends.mkldnn.flags(enabled=False)
        try:
            with torch.no_grad(), inductor.patch(**cpu_bf16.INDUCTOR_OPTIONS), no_onednn:
                out = self.compiled(**inputs)
        except torch._dynamo.exc.TorchDynamoException as e:  # no C++ compiler, an unsupported op, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DistillError(f"torch.compile could not compile the teacher ({first}); "
                               f"teacher.compile=false runs it uncompiled") from e
        if rows == 1:
            out.logits = out.logits[:1]
        return out
