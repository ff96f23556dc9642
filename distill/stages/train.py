"""Stage `train`: fine-tune the student on the teacher's labels (soft probabilities or hard argmax)."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import artifacts
from ..students.base import META_FILE
from ..runtime.device import is_main_process
from ..errors import DistillError
from ..labelstore import read_labels, read_weights
from ..students.finetune import train_student

log = logging.getLogger(__name__)
SUMMARY_KEYS = ("train_loss", "seconds", "n_texts", "n_val", "val_agreement")


def find_labels(cfg: DictConfig) -> Path:
    """The label file to learn from: `train.labels_path`, else what stage=label wrote for this config."""
    if cfg.train.labels_path:
        path = Path(os.path.expanduser(cfg.train.labels_path))
        if not path.exists():
            raise DistillError(f"train.labels_path: {path} does not exist")
        return path
    if artifacts.uses_weak(cfg):
        path = artifacts.weak_dir(cfg) / "pool.parquet"
        if not path.exists():
            raise DistillError(f"no combined labels for weak={cfg.weak.name} at {path}: run `python -m distill "
                               f"stage=weak` with the same data/weak overrides first")
        return path
    path = artifacts.labels_file(cfg, "pool")
    if not path.exists():
        raise DistillError(f"no teacher labels for this data/teacher at {path}: run `python -m distill stage=label` "
                           f"with the same data/teacher overrides first, or set train.labels_path")
    return path


def is_trained(out_dir: Path) -> bool:
    return (out_dir / META_FILE).is_file()


def trained_summary(out_dir: Path) -> dict:
    """The summary a finished training recorded in `out_dir` (for a cache hit's result)."""
    return {k: v for k, v in json.loads((out_dir / META_FILE).read_text()).items() if k in SUMMARY_KEYS}


def record(out_dir: Path, labels_path: Path, cfg: DictConfig, **extra) -> None:
    """distill_config.json: the label file and the whole config a student was made with."""
    artifacts.write_json(out_dir / "distill_config.json", {
        "labels_path": str(labels_path), **extra, "config": OmegaConf.to_container(cfg, resolve=True)})


def run(cfg: DictConfig) -> dict:
    labels_path = find_labels(cfg)
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
    record(out_dir, labels_path, cfg)
    log.info("train: %s student on %d %s teacher labels in %.0f s -> %s", cfg.student.name, len(texts),
             cfg.train.targets, summary.get("seconds", 0.0), out_dir)
    return {"student_dir": str(out_dir), "labels_path": str(labels_path), "cached": False, **summary}
