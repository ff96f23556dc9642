"""Stage `train`: fine-tune the student on the teacher's labels (soft probabilities or hard argmax)."""
from __future__ import annotations

import logging

from omegaconf import DictConfig

from .. import artifacts
from ..labelstore import read_labels, read_weights
from ..runtime.device import is_main_process
from ..students.folder import is_trained, trained_summary
from ..students.trainers import train_student

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    labels_path = artifacts.find_labels(cfg)
    out_dir = artifacts.student_dir(cfg)
    if is_trained(out_dir) and not cfg.train.overwrite:
        log.info("train: this student was already trained with these labels and settings (cache hit; "
                 "train.overwrite=true retrains) -> %s", out_dir)
        return {"student_dir": str(out_dir), "labels_path": str(labels_path), "cached": True,
                **trained_summary(out_dir)}
    texts, probs = read_labels(labels_path, list(cfg.data.labels))
    summary = train_student(texts, probs, list(cfg.data.labels), cfg.student, cfg.train, out_dir,
                            weights=read_weights(labels_path))
    if not is_main_process():
        return {"student_dir": str(out_dir), "labels_path": str(labels_path), "cached": False, **summary}
    artifacts.record_student(out_dir, labels_path, cfg)
    log.info("train: %s student on %d %s teacher labels in %.0f s -> %s", cfg.student.name, len(texts),
             cfg.train.targets, summary.get("seconds", 0.0), out_dir)
    return {"student_dir": str(out_dir), "labels_path": str(labels_path), "cached": False, **summary}
