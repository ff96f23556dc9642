"""A trained classifier as the teacher: a distill student folder, or any fine-tuned sequence classifier.

The use it is made for is a *teacher assistant* (Mirzadeh et al., "Improved knowledge distillation via
teacher assistant", AAAI 2020). The zero-shot teacher is slow, so it labels only a small pool; a large
student fine-tuned on those labels can be both more accurate than the teacher and many times faster.
That student then labels a much larger pool for the small student, which would otherwise learn from a
few thousand labels only. It also serves as a plain teacher: a classifier someone already fine-tuned
(a local folder, or a hub id for users who are online) whose label names match `data.labels`.

`teacher.variant` picks how a distill student folder runs: `torch`, `onnx` or `onnx-int8` (exported once,
as stage=eval does). The labels are single-label probabilities, reordered to `data.labels`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import TeacherConfig
from ..errors import DistillError
from ..runtime.device import resolve_device, teacher_batch
from ..students.folder import META_FILE
from ..students.load import VARIANTS, load_classifier
from .base import Teacher
from .nli import as_text_list

log = logging.getLogger(__name__)


class ClassifierTeacher(Teacher):
    LABEL_KEYS = Teacher.LABEL_KEYS + ("variant",)
    PROMPTED = False

    @classmethod
    def extra_identity(cls, settings: dict) -> dict:
        return {"fingerprint": model_fingerprint(settings["model"])}  # retrained at the same path: another teacher

    """Labels from a fine-tuned classifier's own probabilities (`teacher.kind=classifier`)."""

    def __init__(self, cfg: TeacherConfig, labels: list[str]):
        self.cfg = cfg
        self.name = cfg.name
        self.labels = list(labels)
        self.variant = cfg.variant or "torch"
        if cfg.multi_label:
            raise DistillError("teacher.kind=classifier gives the classifier's single-label probabilities; set "
                               "teacher.multi_label=false")
        if self.variant not in VARIANTS:
            raise DistillError(f"teacher.variant='{self.variant}' is not one of {', '.join(VARIANTS)}")
        if self.variant != "torch" and not Path(os.path.expanduser(str(cfg.model))).is_dir():
            raise DistillError(f"teacher.variant={self.variant} exports a local classifier folder to ONNX; "
                               f"teacher.model={cfg.model} is not one (use teacher.variant=torch for a hub id)")
        self.classifier = load_classifier(cfg.model, device=cfg.device, variant=self.variant)
        self.order = label_order(list(self.classifier.labels), self.labels, cfg.model)
        self.batch_size = teacher_batch(cfg.batch_size, None, resolve_device(cfg.device))[0]
        log.info("teacher %s: the trained classifier %s (%s) for labels %s", self.name, cfg.model, self.variant,
                 self.labels)

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
        texts = as_text_list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        probs = self.classifier.predict_proba(texts, batch_size=batch_size or self.batch_size, progress=progress)
        return np.ascontiguousarray(probs[:, self.order], dtype=np.float32)

    def describe(self) -> dict:
        return {"kind": "classifier", "model": str(self.cfg.model), "variant": self.variant,
                "classifier_labels": list(self.classifier.labels), "labels": self.labels}


def label_order(have: list[str], want: list[str], model: str) -> list[int]:
    """Column of each of `want` in the classifier's `have` (names compared case-insensitively)."""
    index = {name.lower(): i for i, name in enumerate(have)}
    missing = [name for name in want if name.lower() not in index]
    if missing:
        raise DistillError(f"teacher.model={model} predicts {have}, which lacks data label(s) {missing}: a "
                           f"classifier teacher needs the data's label names")
    if len(have) != len(want):
        raise DistillError(f"teacher.model={model} predicts {len(have)} labels {have}, the data has {len(want)} "
                           f"{want}: the probabilities would not sum to 1 over the data's labels")
    return [index[name.lower()] for name in want]


def model_fingerprint(ref: str) -> str | None:
    """A short hash of a local classifier folder's contents (file names and sizes, and its training record),
    so a retrained folder at the same path makes a new labelling, not a stale cache hit; None for a hub id."""
    folder = Path(os.path.expanduser(str(ref)))
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "onnx" not in p.relative_to(folder).parts):
        digest.update(json.dumps([str(path.relative_to(folder)), path.stat().st_size]).encode())
    for name in ("config.json", META_FILE):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:10]
