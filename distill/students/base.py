"""Trained classifiers behind one interface: `predict_proba(texts, batch_size) -> float32 [N, K]`.

`load_classifier(folder)` opens whatever the train stage (or an export) wrote: a fine-tuned
transformers student, an embedding + logistic-regression student, or an ONNX / int8 ONNX export.
`TokenClassifier` is the shared batching of the tokenizer-based ones: texts sorted longest first so
each batch pads little, results put back in input order.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import DistillError

META_FILE = "distill_train.json"
VARIANTS = ("torch", "onnx", "onnx-int8")


def folder_meta(folder: Path) -> dict:
    path = Path(folder) / META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def folder_size_mb(folder: Path, names: Sequence[str] | None = None) -> float:
    """Megabytes on disk of a model: the named files, else every file under the folder."""
    folder = Path(folder)
    files = [folder / n for n in names] if names else [p for p in folder.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files if p.is_file()) / 2 ** 20, 2)


def input_max_length(folder: Path, tokenizer, config) -> int:
    """The longest input a student folder is given: the length it was trained at, else (a foreign folder)
    what both its tokenizer and its position table allow."""
    return folder_meta(folder).get("student", {}).get("max_length") or min(
        tokenizer.model_max_length, getattr(config, "max_position_embeddings", 512), 512)


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


def load_classifier(folder, device: str = "auto", variant: str = "torch"):
    """The classifier stored in `folder`; `variant` onnx / onnx-int8 loads (exporting once) its ONNX graph."""
    folder = Path(os.path.expanduser(str(folder)))
    if variant not in VARIANTS:
        raise DistillError(f"unknown model variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    from .embedding_lr import EmbeddingLRClassifier, is_embedding_lr

    if is_embedding_lr(folder):
        if variant != "torch":
            raise DistillError(f"{folder} is an embedding + logistic-regression student; only its torch "
                               "variant exists")
        return EmbeddingLRClassifier(folder, device=device)
    if variant == "torch":
        from .finetune import StudentClassifier

        return StudentClassifier(folder, device=device)
    from .onnx import ONNXClassifier, export

    return ONNXClassifier(export(folder, quantized=variant == "onnx-int8"), folder)
