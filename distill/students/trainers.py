"""Train a student: the one module that knows every trainer (`train.trainer`, `student.kind`).

`train_student` prepares the teacher's labels (filters, weights, the validation split), runs the trainer
the config names, and writes the self-contained student folder with `distill_train.json` last.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ..config import StudentConfig, TrainConfig
from ..errors import DistillError
from ..runtime.device import is_main_process, world_size
from .finetune import TARGETS, finetune
from .folder import META_FILE
from .trainset import prepare

log = logging.getLogger(__name__)


def txtai_finetune(*args) -> dict:
    from .txtai import txtai_finetune as fit  # txtai is imported only when asked for

    return fit(*args)


def embedding_lr(*args) -> dict:
    from .embedding_lr import train as fit

    return fit(*args)


TRAINERS = {"transformers": finetune, "txtai": txtai_finetune}


def train_student(texts: list[str], probs: np.ndarray, labels: list[str], student: StudentConfig,
                  train: TrainConfig, out_dir: Path, weights: np.ndarray | None = None,
                  holdout: dict | None = None, sets: np.ndarray | None = None,
                  none_label: str | None = None) -> dict:
    """Train `student` on the teacher's probabilities; save a self-contained folder at out_dir. `holdout`
    records which texts of the label file were kept out of training (for eval). `sets` [N, K] (multi-label):
    the teacher's label sets; the student then learns a sigmoid a label and per-label thresholds, saved with
    `none_label` (data.none_label), which predict and eval then read from the folder."""
    out_dir = Path(out_dir)
    if train.targets not in TARGETS:
        raise DistillError(f"train.targets='{train.targets}' is not one of {', '.join(TARGETS)}")
    data, val, stats = prepare(texts, probs, labels, train, weights, sets=sets)
    data.none_label = none_label if sets is not None else None
    kind = getattr(student, "kind", "finetune")
    if sets is not None and kind == "finetune" and train.trainer != "transformers":
        raise DistillError(f"multi-label data trains a fine-tuned student with the transformers trainer; "
                           f"train.trainer={train.trainer} is single-label only")
    if kind == "embedding_lr" and student.layers is not None:
        raise DistillError("student.layers applies to fine-tuned students; an embedding_lr student uses its "
                           "whole encoder (leave student.layers unset)")
    if kind == "embedding_lr":
        fit = embedding_lr
    elif kind == "finetune":
        if train.trainer not in TRAINERS:
            raise DistillError(f"train.trainer='{train.trainer}' is not one of {', '.join(TRAINERS)}")
        fit = TRAINERS[train.trainer]
    else:
        raise DistillError(f"student.kind='{kind}' is not one of finetune, embedding_lr")
    log.info("training student %s (%s) on %d texts, %d for validation (%s targets)", student.name, kind,
             len(data), stats["n_val"], train.targets)
    start = time.perf_counter()
    if kind == "embedding_lr" and world_size() > 1:
        raise DistillError("student.kind=embedding_lr trains in one process; run it without torchrun / "
                           "accelerate launch")
    summary = fit(data, val, labels, student, train, out_dir)
    seconds = time.perf_counter() - start
    if not is_main_process():  # under torchrun / accelerate launch, rank 0 alone writes the folder
        return {"out_dir": str(out_dir), **summary, "seconds": round(seconds, 2), "n_texts": len(data), **stats}
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    summary = {"out_dir": str(out_dir), **summary, "seconds": round(seconds, 2), "n_texts": len(data), **stats,
               **({"holdout": holdout} if holdout and holdout.get("n_texts") else {})}
    write_meta(out_dir, summary, np.asarray(probs, dtype=np.float32), labels, student, train, sets=sets)
    return summary


def write_meta(out_dir: Path, summary: dict, probs: np.ndarray, labels, student, train, sets=None) -> None:
    counts = np.bincount(probs.argmax(axis=1), minlength=len(labels)).tolist()
    if sets is not None:
        summary = {**summary, "multi_label": True,
                   "teacher_set_counts": dict(zip(labels, np.asarray(sets).sum(0).astype(int).tolist()))}
    meta = {**summary, "labels": list(labels),
            "label_distribution": {"argmax_counts": dict(zip(labels, counts)),
                                   "mean_probs": dict(zip(labels, probs.mean(axis=0).round(4).tolist()))},
            "student": plain(student), "train": plain(train)}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def plain(cfg) -> dict:
    """A config node (DictConfig, resolved in place so `${paths.models}` still works, or a dataclass) as a dict."""
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
