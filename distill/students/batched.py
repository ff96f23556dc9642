"""`TokenClassifier`: batched prediction shared by the classifiers that read tokenized text.

Texts are sorted longest first so each batch pads little, and the results are put back in input order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import DistillError


class TokenClassifier:
    """Batched prediction for classifiers that read tokenized text; subclasses implement `_probs`."""

    name: str
    labels: list[str]
    tokenizer = None
    max_length: int = 512

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Label probabilities, float32 [N, K], rows in input order."""
        if batch_size < 1:
            raise DistillError(f"batch_size must be >= 1, got {batch_size}")
        texts = list(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        # longest first (characters as a cheap proxy for tokens) so each batch pads little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        for start in tqdm(range(0, len(order), batch_size), desc=f"student {self.name}", unit="batch",
                          disable=not progress):
            idx = order[start:start + batch_size]
            out[idx] = self._probs([texts[i] for i in idx])
        return out

    def _encode(self, texts: list[str], tensors: str):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors=tensors)

    def _probs(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError
