"""Samples per second of a classifier at several batch sizes, timed after a warm-up."""
from __future__ import annotations

import time
from typing import Callable, Sequence

from tqdm.auto import tqdm

Predict = Callable[[Sequence[str], int], object]  # (texts, batch_size) -> probabilities


def throughput(predict: Predict, texts: Sequence[str], batch_sizes: Sequence[int], n_texts: int = 128,
               warmup_batches: int = 2, desc: str = "bench") -> dict:
    """Time `predict` on `n_texts` texts (at least one full batch) at each batch size.

    Each call gets exactly one batch, in the texts' own order, as a caller streaming requests would send
    them; the warm-up calls (lazy initialisation, allocator growth) are not timed.
    """
    results = {}
    for bs in batch_sizes:
        sample = _cycle(texts, max(n_texts, bs))
        batches = [sample[i:i + bs] for i in range(0, len(sample), bs)]
        for batch in batches[:warmup_batches]:
            predict(batch, bs)
        start = time.perf_counter()
        for batch in tqdm(batches, desc=f"{desc} bs={bs}", unit="batch", leave=False):
            predict(batch, bs)
        seconds = time.perf_counter() - start
        results[bs] = {"samples_per_s": len(sample) / seconds, "seconds": seconds, "n_texts": len(sample)}
    return results


def _cycle(texts: Sequence[str], n: int) -> list[str]:
    texts = list(texts)
    return (texts * (n // max(1, len(texts)) + 1))[:n]
