"""`TokenClassifier`: batched prediction shared by the classifiers that read tokenized text.

Texts are tokenized once, sorted longest first and cut into batches of at most `batch_size` texts and, on a
CPU, at most `max_tokens` padded tokens (runtime.device.STUDENT_CPU_MAX_TOKENS), so each batch pads little;
the results are put back in input order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import DistillError
from ..runtime.device import batches


class TokenClassifier:
    """Batched prediction for classifiers that read tokenized text; subclasses implement `_probs` (a padded
    batch of `tensors` type -> probabilities)."""

    name: str
    labels: list[str]
    tokenizer = None
    max_length: int = 512
    max_tokens: int | None = None  # padded tokens a batch; None: batch_size alone decides
    tensors: str = "pt"

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Label probabilities, float32 [N, K], rows in input order."""
        if batch_size < 1:
            raise DistillError(f"batch_size must be >= 1, got {batch_size}")
        texts = list(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return out
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        features = dict(enc)
        lengths = np.array([len(ids) for ids in features["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        with tqdm(total=len(texts), desc=f"student {self.name}", unit="text", disable=not progress) as bar:
            for rows in batches(order, lengths, batch_size, self.max_tokens):
                batch = self.tokenizer.pad({k: [v[i] for i in rows] for k, v in features.items()},
                                           return_tensors=self.tensors)
                out[rows] = self._probs(batch)
                bar.update(len(rows))
        return out

    def _probs(self, batch) -> np.ndarray:
        raise NotImplementedError
