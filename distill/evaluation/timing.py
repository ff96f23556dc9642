"""Samples per second of a classifier at several batch sizes, timed after a warm-up."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..runtime import cpuinfo

Predict = Callable[[Sequence[str], int], object]  # (texts, batch_size) -> probabilities


def throughput(predict: Predict, texts: Sequence[str], batch_sizes: Sequence[int], n_texts: int = 128,
               warmup_batches: int = 2, desc: str = "bench", repeats: int = 1,
               budget_s: float | None = None) -> dict:
    """Time `predict` on `n_texts` texts (at least one full batch) at each batch size.

    Each call gets exactly one batch, in the texts' own order, as a caller streaming requests would send
    them; the warm-up calls (lazy initialisation, allocator growth) are not timed. Each call is timed on
    its own, so the latency percentiles (per batch) come from the same run as the throughput. With
    `repeats` > 1 the texts are timed that many times and the fastest pass counts (as `timeit` advises:
    the other passes were slowed by something else on the machine); the latencies are those of all passes.
    With `budget_s`, a further pass is made only while the passes so far plus one more fit in that many
    seconds (per batch size): a slow model on long texts is timed once rather than holding up the run for
    minutes (the first pass always runs; how many ran is in the result's `repeats`).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    results = {}
    for bs in batch_sizes:
        sample = _cycle(texts, max(n_texts, bs))
        batches = [sample[i:i + bs] for i in range(0, len(sample), bs)]
        for batch in batches[:warmup_batches]:
            predict(batch, bs)
        latencies, passes = [], []
        for _ in tqdm(range(repeats), desc=f"{desc} bs={bs}", unit="pass", leave=False):
            if budget_s is not None and passes and sum(passes) + passes[-1] > budget_s:
                break
            for batch in batches:
                start = time.perf_counter()
                predict(batch, bs)
                latencies.append(time.perf_counter() - start)
            passes.append(float(sum(latencies[-len(batches):])))
        seconds = min(passes)
        ms = np.asarray(latencies) * 1000
        results[bs] = {"samples_per_s": len(sample) / seconds, "seconds": seconds, "n_texts": len(sample),
                       "repeats": len(passes), "latency_ms_p50": float(np.percentile(ms, 50)),
                       "latency_ms_p95": float(np.percentile(ms, 95))}
    return results


def _cycle(texts: Sequence[str], n: int) -> list[str]:
    texts = list(texts)
    return (texts * (n // max(1, len(texts)) + 1))[:n]


def machine() -> dict:
    """CPU model and features (AVX2, AVX-512, VNNI, BF16, AMX: they move int8 and bf16 results, not only
    speeds), cores, torch threads, Python version and the CUDA GPU if any, for benchmark and eval reports."""
    return {"cpu": cpuinfo.cpu_model(), "cpu_features": cpuinfo.cpu_features(),
            "cpu_summary": cpuinfo.feature_summary(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def write_bench(out, results: dict, markdown: str) -> None:
    """A benchmark's results: `out` (JSON) and the markdown report next to it (.md), which is also printed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown)
    print(markdown)
