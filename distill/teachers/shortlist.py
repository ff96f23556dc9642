"""A label shortlist for NLI teachers over many labels: the cost of a text stops growing with the label count.

An NLI teacher reads a text once per label (77 labels: 77 forward passes a text). Here a cheap ranker, a
sentence encoder scoring the same prompts (distill/teachers/embedding.py, `teacher.ranker`), scores every
label at the cost of one pass a text, and the NLI model reads only each text's top k labels.

Probabilities, single-label: the k shortlisted labels share the ranker's probability mass on them, split as
the NLI model's softmax over those k says; every other label keeps the ranker's own probability. Rows sum to
1, and with k >= the number of labels the teacher is the full NLI teacher exactly (the ranker is not even
built). Multi-label: shortlisted labels get the NLI model's own probability, the others the ranker's.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np

from ..errors import DistillError
from .base import Teacher
from .embedding import EmbeddingTeacher
from .nli import as_text_list

AUTO_MIN_LABELS = 16  # `shortlist: auto` turns on from this many labels
AUTO_K = 8  # ... and keeps this many a text


def shortlist_k(cfg, n_labels: int) -> int | None:
    """The k that `teacher.shortlist` gives for `n_labels` labels, or None when the full teacher runs
    (off, auto below AUTO_MIN_LABELS, k >= n_labels, or a teacher kind that reads no prompts by pairs)."""
    kind = getattr(cfg, "kind", "nli")
    if getattr(kind, "value", kind) not in ("nli", "onnx"):
        return None
    value = str(getattr(cfg, "shortlist", "auto")).strip().lower()
    if value in ("off", "false", "none", "null", "0"):
        return None
    if value == "auto":
        k = AUTO_K if n_labels >= AUTO_MIN_LABELS else None
    else:
        try:
            k = int(value)
        except ValueError:
            raise DistillError(f"teacher.shortlist={value} is not auto, off or a number of labels") from None
        if k < 1:
            raise DistillError(f"teacher.shortlist={value}: keep at least 1 label a text (or off)")
    return k if k is not None and k < n_labels else None


class ShortlistTeacher(Teacher):
    """An NLI teacher (nli or onnx) that scores only each text's top-k labels by `teacher.ranker`."""

    def __init__(self, teacher: Teacher, cfg, labels: list[str], k: int):
        self.teacher, self.k = teacher, k
        self.name, self.labels = teacher.name, list(labels)
        self.multi_label = teacher.multi_label
        ranker = copy.deepcopy(cfg)
        ranker.kind, ranker.model, ranker.multi_label = "embedding", cfg.ranker, False
        ranker.batch_size = None  # texts, not pairs: the device's own
        self.ranker = EmbeddingTeacher(ranker, self.labels)

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
        texts = as_text_list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        rank = self.ranker.predict_proba(texts)
        top = np.argpartition(-rank, self.k - 1, axis=1)[:, :self.k]
        keep = np.zeros(rank.shape, dtype=bool)
        keep[np.arange(len(texts))[:, None], top] = True
        scored = self.teacher.predict_kept(texts, keep, batch_size, progress)
        if self.multi_label:
            return np.where(keep, scored, rank).astype(np.float32)
        mass = (rank * keep).sum(axis=1, keepdims=True)
        return np.where(keep, scored * mass, rank).astype(np.float32)

    @property
    def model(self):
        """The NLI model (its parameters are what eval reports; the ranker is one small encoder more)."""
        return self.teacher.model

    @property
    def truncated(self) -> int:
        return self.teacher.truncated

    @property
    def rechecked(self) -> int:
        return getattr(self.teacher, "rechecked", 0)

    def batch_size_for(self, n_texts: int) -> int:
        return self.teacher.batch_size_for(n_texts) * self.k // len(self.labels)

    def describe(self) -> dict:
        return {**self.teacher.describe(), "shortlist": {"k": self.k, "ranker": self.ranker.describe(),
                                                         "outside": "the ranker's probability, not the teacher's"}}
