"""The cheap student for CPU-only users: a frozen sentence encoder + a logistic-regression head.

Texts are embedded once (mean-pooled, L2-normalised), and a multinomial logistic regression is fitted
on the teacher's labels. Soft targets are fitted exactly: each text enters once per label with weight
p_teacher(label) x its own weight, which makes the logistic loss the soft cross-entropy. The folder it
writes is self-contained (the encoder is copied in):

    <dir>/encoder/            the sentence encoder (tokenizer + weights)
    <dir>/head.npz            coef [K', D], intercept [K'], classes [K'] (label ids the head knows)
    <dir>/distill_student.json  {"kind": "embedding_lr", "labels": [...], "max_length": ...}
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DistillError
from ..runtime.device import resolve_device
from ..runtime.encoder import SentenceEncoder
from .folder import SPEC_FILE, folder_meta, folder_size_mb
from .trainset import LabelledTexts

log = logging.getLogger(__name__)
KIND = "embedding_lr"


def _fit_rows(x: np.ndarray, data: LabelledTexts, targets: str):
    """(features, class ids, sample weights) for sklearn: soft targets expand each text into K rows."""
    w = np.ones(len(data)) if data.weights is None else data.weights
    if targets == "hard":
        return x, data.probs.argmax(axis=1), w
    k = data.probs.shape[1]
    rows = np.repeat(x, k, axis=0)
    ids = np.tile(np.arange(k), len(data))
    weights = (data.probs * w[:, None]).reshape(-1)
    keep = weights > 0
    return rows[keep], ids[keep], weights[keep]


def train(data: LabelledTexts, val: LabelledTexts | None, labels, student, train_cfg, out_dir: Path) -> dict:
    from sklearn.linear_model import LogisticRegression

    out_dir = Path(out_dir)
    device = resolve_device(train_cfg.device)
    encoder = SentenceEncoder(student.model, device, max_length=student.max_length, key="student.model",
                              name=f"embed {student.name}")
    x = encoder.embed(data.texts, progress=True)
    features, ids, weights = _fit_rows(x, data, train_cfg.targets)
    if len(np.unique(ids)) < 2:
        raise DistillError("train: the teacher labels hold a single class; a classifier needs at least two")
    head = LogisticRegression(C=float(student.lr_c), max_iter=2000, random_state=train_cfg.seed)
    head.fit(features, ids, sample_weight=weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder.model.save_pretrained(out_dir / "encoder")
    encoder.tokenizer.save_pretrained(out_dir / "encoder")
    st_config = Path(encoder.tokenizer.name_or_path) / "sentence_bert_config.json"
    if st_config.is_file():  # keeps sentence-transformers' length limit with the copy
        (out_dir / "encoder" / st_config.name).write_text(st_config.read_text())
    np.savez(out_dir / "head.npz", coef=head.coef_.astype(np.float32), intercept=head.intercept_.astype(np.float32),
             classes=head.classes_.astype(np.int64))
    spec = {"kind": KIND, "labels": list(labels), "max_length": encoder.max_length, "base_model": str(student.model)}
    (out_dir / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    summary = {"train_loss": None, "steps": int(np.max(head.n_iter_))}
    if val is not None:  # the encoder and head in memory: no reload of what was just saved
        predicted = head.classes_[head.predict_proba(encoder.embed(val.texts)).argmax(axis=1)]
        summary["val_agreement"] = float((predicted == val.probs.argmax(1)).mean())
    return summary


class EmbeddingLRClassifier:
    """A folder `train` wrote, loaded for batched prediction of label probabilities."""

    def __init__(self, folder, device: str = "auto", max_length: int | None = None):
        self.folder = Path(folder)
        spec = json.loads((self.folder / SPEC_FILE).read_text())
        self.labels = list(spec["labels"])
        meta = folder_meta(self.folder)
        self.name = meta.get("student", {}).get("name") or self.folder.name
        self.device = resolve_device(device)
        self.encoder = SentenceEncoder(str(self.folder / "encoder"), self.device,
                                       max_length=max_length or spec.get("max_length", 256),
                                       key="student folder", name=f"student {self.name}")
        head = np.load(self.folder / "head.npz")
        self.coef, self.intercept, self.classes = head["coef"], head["intercept"], head["classes"]
        self.max_length = self.encoder.max_length

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Label probabilities, float32 [N, K], rows in input order."""
        x = self.encoder.embed(list(texts), batch_size, progress)
        z = x @ self.coef.T + self.intercept
        k = len(self.labels)
        out = np.zeros((len(x), k), dtype=np.float32)
        if self.coef.shape[0] == 1:  # sklearn's binary head: one logit for classes[1] against classes[0]
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            out[:, self.classes[1]], out[:, self.classes[0]] = p, 1.0 - p
            return out
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out[:, self.classes] = e / e.sum(axis=1, keepdims=True)
        return out

    def num_parameters(self) -> int:
        return self.encoder.num_parameters() + int(self.coef.size + self.intercept.size)

    def size_mb(self) -> float:
        return folder_size_mb(self.folder)

    def describe(self) -> dict:
        return {"name": self.name, "kind": KIND, "model": str(self.folder), "labels": self.labels,
                "num_parameters": self.num_parameters(), "device": str(self.device), "max_length": self.max_length}
