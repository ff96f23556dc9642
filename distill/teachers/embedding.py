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

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModel

from ..config import TeacherConfig
from ..device import resolve_device, resolve_dtype
from ..errors import DistillError
from ..hub import load_model
from .base import Teacher
from .nli import as_text_list, hypotheses_for, softmax

log = logging.getLogger(__name__)


class EmbeddingTeacher(Teacher):
    """Zero-shot labels from cosine similarity between sentence embeddings of texts and label prompts.

    Single-label only: cosines have no calibrated per-label threshold, so there is no multi-label mode.
    """

    def __init__(self, cfg: TeacherConfig, labels: list[str]):
        self.cfg = cfg
        self.name = cfg.name
        self.labels = list(labels)
        if cfg.multi_label:
            raise DistillError("teacher.kind=embedding is single-label (a softmax of cosine similarities over the "
                               "labels; a cosine has no per-label yes/no threshold): set teacher.multi_label=false, "
                               "or use an NLI teacher (teacher.kind=nli or onnx) for multi-label data")
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
        self.tokenizer, self.model = load_encoder(cfg.model, self.device, self.dtype)
        self.max_length = self._max_length(cfg.max_length)
        self.input_names = list(self.tokenizer.model_input_names)
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
                "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}

    def embed(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 [N, D] sentence embeddings, rows in input order."""
        texts = as_text_list(texts)
        batch_size = batch_size or self.cfg.batch_size
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        features = {name: enc[name] for name in self.input_names if name in enc}
        lengths = np.array([len(ids) for ids in features["input_ids"]])
        # Longest first, as in the NLI teacher: little padding per batch, and memory trouble shows at once.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with tqdm(total=len(texts), desc=f"teacher {self.name}", unit="text", disable=not progress,
                  leave=False) as bar:
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = self.tokenizer.pad({k: [v[i] for i in rows] for k, v in features.items()},
                                           return_tensors="pt")
                out[rows] = self._encode(batch)
                bar.update(len(rows))
        return out

    @torch.inference_mode()
    def _encode(self, batch) -> np.ndarray:
        batch = batch.to(self.device)
        # Pool in float32 so half-precision weights cost no accuracy in the sums and the norm.
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1).cpu().numpy()

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

    def _max_length(self, max_length: int) -> int:
        """teacher.max_length capped by the tokenizer, the position table and sentence-transformers' limit."""
        # The encoder was trained on texts up to max_seq_length (256 for MiniLM, 384 for mpnet), which
        # sentence-transformers reads from this file; the tokenizer itself claims 512.
        st_config = Path(self.tokenizer.name_or_path) / "sentence_bert_config.json"
        st_limit = json.loads(st_config.read_text()).get("max_seq_length") if st_config.is_file() else None
        positions = getattr(self.model.config, "max_position_embeddings", None)
        return min(n for n in (int(max_length), self.tokenizer.model_max_length, positions, st_limit) if n)


def label_prompts(cfg: TeacherConfig, labels: list[str]) -> dict[str, list[str]]:
    """Per label, the sentences whose embeddings stand for it: its descriptions, else one per template.

    The same rules (and errors) as the NLI teacher's hypotheses: descriptions win over templates.
    """
    prompts, owner = hypotheses_for(cfg, labels)
    return {label: [p for p, k in zip(prompts, owner) if k == i] for i, label in enumerate(labels)}


def load_encoder(ref: str, device: torch.device, dtype: torch.dtype):
    """Tokenizer and eval-mode bare encoder (no head) on `device`."""
    return load_model(ref, "teacher.model", AutoModel, device, dtype)
