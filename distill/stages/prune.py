"""Stage `prune`: a faster student from a trained one. Its feed-forward blocks are cut to `prune.ffn_size`
units per layer, keeping the units that matter most to its loss on the teacher's labels (distill/students/pruning.py),
and/or `prune.drop_layers` whole layers go, each time the one the loss misses least; then it is fine-tuned
again for `prune.epochs` at `prune.lr`, on the same labels or on `prune.labels_path` (e.g. a teacher
assistant's labels of a larger pool).

The trained student is the one this config's stage=train wrote; the pruned one goes next to it, as
`<student folder>-ffn<size>[-drop<n>][-<labels' folder>]`, so `eval.students=all` measures it beside the others.
"""
from __future__ import annotations

import logging
import shutil

from omegaconf import DictConfig, OmegaConf

from .. import artifacts
from ..config import StudentKind
from ..errors import DistillError
from ..labelstore import read_labels, read_weights
from ..runtime.device import world_size
from ..students.folder import is_trained, reading, trained_summary
from ..students.pruning import drop_layers, ffn_importance, prune_ffn
from ..students.trainers import train_student

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    size, drop = cfg.prune.ffn_size, cfg.prune.drop_layers
    if size is None and not drop:
        raise DistillError("stage=prune needs prune.ffn_size (the feed-forward units to keep in every layer) "
                           "and/or prune.drop_layers (whole layers to remove)")
    if drop < 0:
        raise DistillError(f"prune.drop_layers={drop} must be 0 or more")
    if cfg.student.kind != StudentKind.finetune:
        raise DistillError(f"stage=prune shrinks fine-tuned students; student={cfg.student.name} is "
                           f"kind={cfg.student.kind}")
    source = artifacts.student_dir(cfg)
    if not is_trained(source):
        raise DistillError(f"stage=prune: no trained student at {source}; run stage=train with the same "
                           f"overrides first")
    with artifacts.exclusive(artifacts.pruned_dir(cfg), "pruning this student", enabled=world_size() == 1):
        return _prune(cfg, source)


def _prune(cfg: DictConfig, source) -> dict:
    suffix = artifacts.pruned_suffix(cfg)
    out_dir = artifacts.pruned_dir(cfg)
    if is_trained(out_dir) and not cfg.train.overwrite:
        log.info("prune: already cut (%s) and fine-tuned (cache hit; train.overwrite=true redoes it) -> %s",
                 suffix, out_dir)
        return {"student_dir": str(out_dir), "pruned_from": str(source), "cached": True,
                **trained_summary(out_dir)}
    labels_path = artifacts.prune_labels(cfg)
    labels = list(cfg.data.labels)
    texts, probs = read_labels(labels_path, labels)
    init = out_dir.with_name(out_dir.name + ".init")
    removed = _pruned_copy(cfg, source, init, texts, probs)
    name = f"{cfg.student.name}-{artifacts.pruned_suffix(cfg, short=True)}"
    student = OmegaConf.merge(cfg.student, {"name": name, "model": str(init), "layers": None})
    train = OmegaConf.merge(cfg.train, {"epochs": cfg.prune.epochs, "lr": cfg.prune.lr})
    summary = train_student(texts, probs, labels, student, train, out_dir, weights=read_weights(labels_path))
    shutil.rmtree(init, ignore_errors=True)
    artifacts.record_student(out_dir, labels_path, cfg, pruned_from=str(source), dropped_layers=removed)
    log.info("prune: %s cut (%s) and fine-tuned on %d texts in %.0f s -> %s", cfg.student.name, suffix,
             len(texts), summary.get("seconds", 0.0), out_dir)
    return {"student_dir": str(out_dir), "pruned_from": str(source), "cached": False, "dropped_layers": removed,
            **summary}


def _pruned_copy(cfg: DictConfig, source, init, texts: list[str], probs) -> list[int]:
    """The trained student cut as configured, saved at `init` to be fine-tuned; the dropped layers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with reading(source):
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(source)
    n = min(cfg.prune.texts, len(texts))
    args = (texts[:n], probs[:n], cfg.train.temperature, cfg.student.max_length)
    if cfg.prune.ffn_size is not None:
        prune_ffn(model, cfg.prune.ffn_size, ffn_importance(model, tokenizer, *args))
    removed = drop_layers(model, tokenizer, cfg.prune.drop_layers, *args) if cfg.prune.drop_layers else []
    shutil.rmtree(init, ignore_errors=True)
    model.save_pretrained(init)
    tokenizer.save_pretrained(init)
    return removed
