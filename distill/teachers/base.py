"""The one interface every teacher implements: label names in, a probability matrix out."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np


class Teacher(ABC):
    """A zero-shot labeller: `predict_proba(texts)` gives float32 [N, K] scores over `labels`.

    Rows come back in input order. Single-label teachers return rows that sum to 1; multi-label
    teachers score each label on its own (a row need not sum to 1).
    """

    name: str
    labels: list[str]

    @abstractmethod
    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
        """Float32 [len(texts), len(labels)] probabilities; `progress` shows a bar on long calls."""

    def batch_size_for(self, n_texts: int) -> int:
        """The `batch_size` that makes one forward pass over `n_texts` texts (NLI counts pairs)."""
        return n_texts

    def describe(self) -> dict:
        """JSON-able settings that determine the outputs, written next to the labels they produced."""
        return {"kind": type(self).__name__, "name": self.name, "labels": list(self.labels)}
