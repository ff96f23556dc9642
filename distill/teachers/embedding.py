"""Embedding-similarity teacher: a text's label is the label description its sentence embedding is closest to.

Texts and label prompts are embedded by a sentence encoder the way sentence-transformers does for
all-MiniLM-L6-v2 / all-mpnet-base-v2 (mean of the token states under the attention mask, then L2
normalisation), without depending on that package. Scores are softmax(cosine / temperature) over labels.

A label with several prompts (descriptions, or one prompt per template) is represented by the
renormalised mean of their embeddings, not by averaged probabilities: labels may have different
numbers of descriptions, which cannot be paired into per-description softmaxes, while one prototype
per label can; it also leaves a single [K, D] matrix to multiply at prediction time.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ..config import TeacherConfig
from ..errors import DistillError
from ..runtime.device import resolve_device, resolve_dtype, teacher_batch
from ..runtime.encoder import SentenceEncoder
from .base import Teacher
from .nli import as_text_list, hypotheses_for, softmax

log = logging.getLogger(__name__)


class EmbeddingTeacher(Teacher):
    LABEL_KEYS = Teacher.LABEL_KEYS + ("temperature",)
    """Zero-shot labels from cosine similarity between sentence embeddings of texts and label prompts.

    Multi-label (teacher.multi_label, data.multi_label): cosines have no calibrated per-label yes/no, so the
    probabilities stay the softmax shares and teacher.label_sets makes the sets from them (relative:0.5 keeps
    the labels within half the top label's share; measured on GoEmotions in docs/benchmarks.md).
    """

    def __init__(self, cfg: TeacherConfig, labels: list[str]):
        self.cfg = cfg
        self.name = cfg.name
        self.labels = list(labels)
        self.multi_label = bool(cfg.multi_label)
        if len(self.labels) < 2:
            raise DistillError(f"teacher.kind=embedding needs at least two labels to choose between (got "
                               f"{self.labels}); a single label needs an NLI teacher (teacher.kind=nli)")
        if not cfg.temperature > 0:
            raise DistillError(f"teacher.temperature={cfg.temperature} must be > 0 (e.g. 0.05): "
                               f"probabilities are softmax(cosine / temperature)")
        self.temperature = float(cfg.temperature)
        self.prompts = label_prompts(cfg, self.labels)
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.encoder = SentenceEncoder(cfg.model, self.device, self.dtype, cfg.max_length,
                                       teacher_batch(cfg.batch_size, None, self.device)[0],
                                       name=f"teacher {self.name}")
        self.tokenizer, self.model, self.max_length = self.encoder.tokenizer, self.encoder.model, self.encoder.max_length
        # Prompts are embedded once: every predict_proba call only multiplies by this [K, D] matrix.
        self.label_embeddings = self._label_embeddings()
        log.info("teacher %s: %s (sentence embeddings, %d prompts for %d labels, temperature %g) on %s in %s",
                 self.name, cfg.model, sum(map(len, self.prompts.values())), len(self.labels),
                 self.temperature, self.device, self.dtype)

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
        """Float32 [N, K] label probabilities, rows in input order; `batch_size` counts texts."""
        texts = as_text_list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        cosine = self.embed(texts, batch_size, progress) @ self.label_embeddings.T
        return softmax(cosine / self.temperature)

    def describe(self) -> dict:
        return {"kind": "embedding", "model": self.cfg.model, "prompts": self.prompts, "pooling": "mean",
                "normalize": True, "temperature": self.temperature, "max_length": self.max_length,
                "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")} | \
            ({"multi_label": True} if self.multi_label else {})

    def embed(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 [N, D] sentence embeddings, rows in input order."""
        return self.encoder.embed(as_text_list(texts), batch_size, progress)

    def _label_embeddings(self) -> np.ndarray:
        """[K, D]: per label, the renormalised mean of its prompts' normalised embeddings."""
        flat = [prompt for label in self.labels for prompt in self.prompts[label]]
        vectors = self.embed(flat)
        centroids, start = [], 0
        for label in self.labels:
            count = len(self.prompts[label])
            centroids.append(vectors[start:start + count].mean(0))
            start += count
        centroids = np.stack(centroids)
        return (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).astype(np.float32)


def label_prompts(cfg: TeacherConfig, labels: list[str]) -> dict[str, list[str]]:
    """Per label, the sentences whose embeddings stand for it: its descriptions, else one per template.

    The same rules (and errors) as the NLI teacher's hypotheses: descriptions win over templates.
    """
    prompts, owner = hypotheses_for(cfg, labels)
    return {label: [p for p, k in zip(prompts, owner) if k == i] for i, label in enumerate(labels)}
