"""The cheap student for CPU-only users: a frozen sentence encoder + a logistic-regression head.

Texts are embedded once (mean-pooled, L2-normalised), and a multinomial logistic regression is fitted
on the teacher's labels. Soft targets are fitted exactly: each text enters once per label with weight
p_teacher(label) x its own weight, which makes the logistic loss the soft cross-entropy. The folder it
writes is self-contained (the encoder is copied in):

    <dir>/encoder/            the sentence encoder (tokenizer + weights)
    <dir>/head.npz            coef [K', D], intercept [K'], classes [K'] (label ids the head knows)
    <dir>/distill_student.json  {"kind": "embedding_lr", "labels": [...], "max_length": ...}

Multi-label data (the teacher's label sets given): one binary logistic regression a label (one-vs-rest), on
the sets (hard targets) or each label's own probability (soft: each text enters as a positive weighted p and a
negative weighted 1 - p), positives weighed up with train.label_balance; per-label thresholds fitted on the
validation split as for fine-tuned students. head.npz then holds coef [K, D] and intercept [K] (a sigmoid a
label), and the spec `multi_label`, `thresholds` and `none_label`.
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
from .folder import SPEC_FILE, folder_meta, folder_size_mb, probabilities
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


def _one_vs_rest(x: np.ndarray, data: LabelledTexts, student, train_cfg) -> tuple[np.ndarray, np.ndarray]:
    """Multi-label: (coef [K, D], intercept [K]), a binary logistic regression a label. A label the teacher
    gave every text or none gets no weights and an intercept that says so (its rate, clipped)."""
    from sklearn.linear_model import LogisticRegression

    w = np.ones(len(data)) if data.weights is None else data.weights
    k = data.sets.shape[1]
    coef, intercept = np.zeros((k, x.shape[1]), dtype=np.float64), np.zeros(k, dtype=np.float64)
    for label in range(k):
        p = data.sets[:, label].astype(np.float64) if train_cfg.targets == "hard" else data.probs[:, label]
        pos = 1.0 if data.pos_weight is None else float(data.pos_weight[label])
        rows = np.concatenate([x, x])
        ids = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
        weights = np.concatenate([p * w * pos, (1 - p) * w])
        keep = weights > 0
        if len(np.unique(ids[keep])) < 2:
            rate = float(np.clip(p.mean(), 1e-4, 1 - 1e-4))
            intercept[label] = np.log(rate / (1 - rate))
            continue
        head = LogisticRegression(C=float(student.lr_c), max_iter=2000, random_state=train_cfg.seed)
        head.fit(rows[keep], ids[keep], sample_weight=weights[keep])
        coef[label], intercept[label] = head.coef_[0], head.intercept_[0]
    return coef, intercept


def train(data: LabelledTexts, val: LabelledTexts | None, labels, student, train_cfg, out_dir: Path) -> dict:
    from sklearn.linear_model import LogisticRegression

    out_dir = Path(out_dir)
    device = resolve_device(train_cfg.device)
    encoder = SentenceEncoder(student.model, device, max_length=student.max_length, key="student.model",
                              name=f"embed {student.name}")
    x = encoder.embed(data.texts, progress=True)
    multi = data.sets is not None
    if multi:
        coef, intercept = _one_vs_rest(x, data, student, train_cfg)
        classes, head = np.arange(len(labels)), None
    else:
        features, ids, weights = _fit_rows(x, data, train_cfg.targets)
        if len(np.unique(ids)) < 2:
            raise DistillError("train: the teacher labels hold a single class; a classifier needs at least two")
        head = LogisticRegression(C=float(student.lr_c), max_iter=2000, random_state=train_cfg.seed)
        head.fit(features, ids, sample_weight=weights)
        coef, intercept, classes = head.coef_, head.intercept_, head.classes_
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder.model.save_pretrained(out_dir / "encoder")
    encoder.tokenizer.save_pretrained(out_dir / "encoder")
    st_config = Path(encoder.tokenizer.name_or_path) / "sentence_bert_config.json"
    if st_config.is_file():  # keeps sentence-transformers' length limit with the copy
        (out_dir / "encoder" / st_config.name).write_text(st_config.read_text())
    np.savez(out_dir / "head.npz", coef=np.asarray(coef, np.float32), intercept=np.asarray(intercept, np.float32),
             classes=np.asarray(classes, np.int64))
    spec = {"kind": KIND, "labels": list(labels), "max_length": encoder.max_length, "base_model": str(student.model)}
    summary = {"train_loss": None, "steps": int(np.max(head.n_iter_)) if head is not None else None}
    if multi:
        from .finetune import fit_thresholds

        probs = probabilities(encoder.embed(val.texts) @ coef.T + intercept, multi_label=True) if val is not None \
            else None
        thresholds = (fit_thresholds(probs, val.sets, str(train_cfg.thresholds)) if val is not None
                      else [0.5] * len(labels))
        spec.update(multi_label=True, thresholds=thresholds, none_label=data.none_label)
        summary["thresholds"] = dict(zip(labels, thresholds))
    (out_dir / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    if val is not None and not multi:  # the encoder and head in memory: no reload of what was just saved
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
        self.multi_label = bool(spec.get("multi_label"))
        self.max_length = self.encoder.max_length

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Label probabilities, float32 [N, K], rows in input order."""
        x = self.encoder.embed(list(texts), batch_size, progress)
        z = x @ self.coef.T + self.intercept
        if self.multi_label:  # one-vs-rest: a sigmoid a label
            return probabilities(z, multi_label=True)
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
