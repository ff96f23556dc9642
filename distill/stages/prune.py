"""Stage `prune`: a faster student from a trained one. Its feed-forward blocks are cut to `prune.ffn_size`
units per layer, keeping the units that matter most to its loss on the teacher's labels (distill/prune.py),
and it is fine-tuned again on the same labels for `prune.epochs` at `prune.lr`.

The trained student is the one this config's stage=train wrote; the pruned one goes next to it, as
`<student folder>-ffn<size>`, so `eval.students=all` measures it beside the others.
"""
from __future__ import annotations

import logging
import shutil

from omegaconf import DictConfig, OmegaConf

from .. import artifacts
from ..errors import DistillError
from ..labelstore import read_labels, read_weights
from ..prune import ffn_importance, prune_ffn
from ..students import train_student
from .train import find_labels, is_trained, record, trained_summary

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    size = cfg.prune.ffn_size
    if size is None:
        raise DistillError("stage=prune needs prune.ffn_size: the feed-forward units to keep in every layer")
    if cfg.student.kind != "finetune":
        raise DistillError(f"stage=prune shrinks fine-tuned students; student={cfg.student.name} is "
                           f"kind={cfg.student.kind}")
    source = artifacts.student_dir(cfg)
    if not is_trained(source):
        raise DistillError(f"stage=prune: no trained student at {source}; run stage=train with the same "
                           f"overrides first")
    out_dir = source.with_name(f"{source.name}-ffn{size}")
    if is_trained(out_dir) and not cfg.train.overwrite:
        log.info("prune: already pruned to %d units and fine-tuned (cache hit; train.overwrite=true redoes "
                 "it) -> %s", size, out_dir)
        return {"student_dir": str(out_dir), "pruned_from": str(source), "cached": True,
                **trained_summary(out_dir)}
    labels_path = find_labels(cfg)
    labels = list(cfg.data.labels)
    texts, probs = read_labels(labels_path, labels)
    init = out_dir.with_name(out_dir.name + ".init")
    _pruned_copy(cfg, source, init, texts, probs)
    student = OmegaConf.merge(cfg.student, {"name": f"{cfg.student.name}-ffn{size}", "model": str(init),
                                            "layers": None})
    train = OmegaConf.merge(cfg.train, {"epochs": cfg.prune.epochs, "lr": cfg.prune.lr})
    summary = train_student(texts, probs, labels, student, train, out_dir, weights=read_weights(labels_path))
    shutil.rmtree(init, ignore_errors=True)
    record(out_dir, labels_path, cfg, pruned_from=str(source))
    log.info("prune: %s cut to %d feed-forward units a layer and fine-tuned in %.0f s -> %s", cfg.student.name,
             size, summary.get("seconds", 0.0), out_dir)
    return {"student_dir": str(out_dir), "pruned_from": str(source), "cached": False, **summary}


def _pruned_copy(cfg: DictConfig, source, init, texts: list[str], probs) -> None:
    """The trained student with its feed-forward blocks pruned, saved at `init` to be fine-tuned."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source)
    n = min(cfg.prune.texts, len(texts))
    scores = ffn_importance(model, tokenizer, texts[:n], probs[:n], cfg.train.temperature, cfg.student.max_length)
    prune_ffn(model, cfg.prune.ffn_size, scores)
    shutil.rmtree(init, ignore_errors=True)
    model.save_pretrained(init)
    tokenizer.save_pretrained(init)
