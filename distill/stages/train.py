"""Stage `train`: fine-tune the student on the teacher's labels (soft probabilities or hard argmax)."""
from __future__ import annotations

import logging

import numpy as np
from omegaconf import DictConfig

from .. import artifacts
from ..config import multi_label, none_index
from ..errors import DistillError
from ..evaluation.multilabel import rule_sets
from ..labelstore import read_labels, read_weights
from ..review.answers import with_answers
from ..runtime.device import is_main_process, world_size
from ..students.folder import is_trained, trained_summary
from ..students.trainers import train_student
from ..students.trainset import holdout_rows

log = logging.getLogger(__name__)

FEW_TEXTS = 500  # fewer training texts than this: warn that the student will copy the teacher poorly


def run(cfg: DictConfig) -> dict:
    none = none_index(cfg)  # a bad data.none_label (or one on a single-label run) is a one-line error first
    # a second run training the same student waits, then finds it trained (the ranks of one DDP run share it)
    with artifacts.exclusive(artifacts.student_dir(cfg), "training this student", enabled=world_size() == 1):
        return _train(cfg, none)


def _train(cfg: DictConfig, none: int | None) -> dict:
    labels_path = artifacts.find_labels(cfg)
    out_dir = artifacts.student_dir(cfg)
    log.info("train: student %s learns from the labels in %s", cfg.student.name, labels_path)
    if is_trained(out_dir) and not cfg.train.overwrite:
        log.info("train: this student was already trained with these labels and settings (cache hit; "
                 "train.overwrite=true retrains) -> %s", out_dir)
        return {"student_dir": str(out_dir), "labels_path": str(labels_path), "cached": True,
                **trained_summary(out_dir)}
    texts, probs = read_labels(labels_path, list(cfg.data.labels))
    weights = read_weights(labels_path)
    multi, rule = multi_label(cfg), artifacts.sets_rule(cfg)
    # the sets over the whole file, as its `labels` column holds them (a rate: rule ranks every labelled text)
    sets = rule_sets(probs, rule, none=none) if multi else None
    share = artifacts.holdout(cfg)
    held = holdout_rows(len(texts), share, cfg.train.seed)
    if len(held):  # no gold: these texts are for eval to score the student against the teacher
        keep = np.setdiff1d(np.arange(len(texts)), held)
        texts, probs = [texts[i] for i in keep], probs[keep]
        weights = weights[keep] if weights is not None else None
        sets = sets[keep] if sets is not None else None
        log.info("train: %d of the %d labelled texts kept out of training, for eval to score the student against "
                 "the teacher (no gold labels; train.holdout)", len(held), len(keep) + len(held))
    answers = artifacts.review_answers(cfg)
    if multi and len(answers):
        raise DistillError("review answers give one label a text: they cannot teach a multi-label student yet "
                           "(set review.answers=null)")
    texts, probs, weights, learned = with_answers(texts, probs, weights, answers, cfg.review.gold_weight)
    if learned:
        log.info("train: %d reviewed texts learn their gold label (review.gold_weight=%s); %d of the random review "
                 "sample are kept out, for eval's estimates", learned["answers_trained_on"], cfg.review.gold_weight,
                 learned["random_answers_kept_out"])
    if len(texts) < FEW_TEXTS:
        log.warning("train: only %d texts to learn from; a student needs more to copy its teacher well (tried on "
                    "71 reviews, one agreed with the teacher on half of the texts it had not seen, against about "
                    "85%% from 1,800): label more texts if you have them (a bigger file, data.pool_size)", len(texts))
    if multi:
        source = "weak label model's" if artifacts.uses_weak(cfg) else "teacher's"
        key = "weak" if artifacts.uses_weak(cfg) else "teacher"
        log.info("train: multi-label: the %s label sets (%s.label_sets=%s) hold %.2f labels a text; the student "
                 "learns a sigmoid a label and per-label thresholds", source, key, rule, float(sets.sum(1).mean()))
    summary = train_student(texts, probs, list(cfg.data.labels), cfg.student, cfg.train, out_dir, weights=weights,
                            holdout={"fraction": share, "seed": cfg.train.seed, "n_texts": len(held)}, sets=sets,
                            none_label=cfg.data.none_label if none is not None else None)
    summary.update(learned)
    if not is_main_process():
        return {"student_dir": str(out_dir), "labels_path": str(labels_path), "cached": False, **summary}
    artifacts.record_student(out_dir, labels_path, cfg, **({"answers": learned} if learned else {}))
    log.info("train: %s student on %d %s teacher labels in %.0f s -> %s", cfg.student.name, len(texts),
             cfg.train.targets, summary.get("seconds", 0.0), out_dir)
    return {"student_dir": str(out_dir), "labels_path": str(labels_path), "cached": False, **summary}
