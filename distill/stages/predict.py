"""Stage `predict`: a trained student (or the teacher) labels a file of new texts.

    python -m distill stage=predict input=new_reviews.csv [predict.threshold=0.7] [predict.model=teacher]
    python -m distill stage=predict input=big.parquet predict.engine=ray [ray.address=auto] [predict.output=DIR]
"""
from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from .. import artifacts
from ..config import Engine, PredictModel, multi_label, none_index
from ..data import FORMATS, file_format
from ..errors import DistillError
from ..predictions import CHUNK_ROWS, check_labels, predict_file, predict_frame
from ..review.estimate import FEW_FOR_THRESHOLD, pick_threshold, threshold_table
from ..students.load import load_classifier
from ..teachers import build_teacher

log = logging.getLogger(__name__)


def for_workers(cfg: DictConfig) -> DictConfig:
    """The config Ray actors get: the student folder found once, here, as an absolute path."""
    shipped = cfg.copy()
    if cfg.predict.model == PredictModel.student:
        shipped.predict.student_path = str(artifacts.predict_student(cfg).resolve())
    return shipped


def classifier(cfg: DictConfig):
    """(predict_proba(texts, batch_size), labels, name) of the model predict.model names."""
    labels = list(cfg.data.labels)
    if cfg.predict.model == PredictModel.teacher:
        teacher = build_teacher(cfg.teacher, labels)
        return (lambda texts, bs: teacher.predict_proba(texts, batch_size=teacher.batch_size_for(bs))), labels, cfg.teacher.name
    model = load_classifier(artifacts.predict_student(cfg), device=cfg.predict.device, variant=cfg.predict.variant)
    return (lambda texts, bs: model.predict_proba(texts, batch_size=bs)), list(model.labels), model.name


def set_rule(cfg: DictConfig):
    """Multi-label: probabilities -> label sets, by predict.top_k (each row's K most probable) or predict.threshold
    (one for every label) when set, else the student's per-label thresholds (the teacher's teacher.label_sets
    rule for predict.model=teacher); None
    for a single-label run."""
    if not multi_label(cfg):
        return None
    from ..evaluation import multilabel as ml
    from ..students.folder import none_index_of, thresholds_of

    given, none = cfg.predict.threshold, none_index(cfg)
    top_k = cfg.predict.get("top_k")
    if top_k is not None:
        if top_k < 1:
            raise DistillError(f"predict.top_k must be at least 1 (labels a row), got {top_k}")
        if given is not None:
            raise DistillError(f"predict.top_k={top_k} and predict.threshold={given} are two ways to make the label "
                               "sets: set one")
        return partial(ml.rule_sets, rule=f"top:{int(top_k)}")
    if given is not None:
        if not 0 < given < 1:
            raise DistillError(f"predict.threshold must be between 0 and 1, got {given}")
        return partial(ml.threshold, thresholds=float(given), none=none)
    if cfg.predict.model == PredictModel.teacher:
        if str(cfg.teacher.label_sets).startswith("rate"):
            raise DistillError(f"teacher.label_sets={cfg.teacher.label_sets} ranks each label over a whole labelled "
                               "file, and predict labels a file a chunk at a time: predict with the student (its "
                               "thresholds), or give the teacher relative:R, threshold:T or top:K here")
        return partial(ml.rule_sets, rule=str(cfg.teacher.label_sets), none=none)
    folder = artifacts.predict_student(cfg)
    thresholds = thresholds_of(folder)
    if thresholds is None:
        raise DistillError(f"the student at {folder} is single-label (a softmax over labels) and this run is "
                           f"multi-label: train one here (stage=train), or predict with data.multi_label=false")
    return partial(ml.threshold, thresholds=thresholds, none=none_index_of(folder))


def text_columns(cfg: DictConfig) -> list[str]:
    return [cfg.predict.text_column] if cfg.predict.text_column else list(cfg.data.text_columns)


def frame_predictor(cfg: DictConfig) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Rows -> rows with the predictions (`distill.predictions.predict_frame`), with the model loaded once:
    what each actor of predict.engine=ray builds."""
    predict_proba, labels, _ = classifier(cfg)
    return partial(predict_frame, predict_proba=predict_proba, labels=labels, text_columns=text_columns(cfg),
                   separator=cfg.data.text_separator, batch_size=cfg.predict.batch_size,
                   threshold=cfg.predict.threshold, positive_label=cfg.predict.positive_label, sets=set_rule(cfg),
                   label_separator=cfg.data.label_separator)


def threshold_from_answers(cfg: DictConfig, predict_proba, labels: list[str]) -> float:
    """predict.threshold from the person's answers to the random review sample and a target precision or
    recall (review/estimate.py: threshold_table, pick_threshold)."""
    p = cfg.predict
    if p.target_precision is not None and p.target_recall is not None:
        raise DistillError("set predict.target_precision or predict.target_recall, not both")
    target, key = (p.target_precision, "precision") if p.target_precision is not None else (p.target_recall, "recall")
    if len(labels) != 2:
        raise DistillError(f"predict.target_{key} applies to binary tasks; these labels are {labels}")
    if not 0 < target <= 1:
        raise DistillError(f"predict.target_{key} must be in (0, 1], got {target}")
    if p.threshold is not None:
        raise DistillError(f"set predict.threshold or predict.target_{key}, not both")
    check_labels(labels, p.positive_label)
    answers = artifacts.review_answers(cfg)
    random = answers.part("random")
    if len(random) < FEW_FOR_THRESHOLD:
        raise DistillError(f"predict.target_{key}: {len(random)} answered texts of the random review sample, fewer "
                           f"than the {FEW_FOR_THRESHOLD} a threshold needs; run `distill stage=review` and fill in "
                           f"the `gold` column of its random rows (review.answers={cfg.review.answers})")
    positive = labels.index(p.positive_label) if p.positive_label else 1
    texts = [answers.texts[i] for i in random]
    gold = np.array([answers.gold_ids[i] for i in random])
    table = threshold_table(predict_proba(texts, p.batch_size)[:, positive], gold == positive)
    best = pick_threshold(table, **{key: target})
    if best is None:
        top = max((r[key] or 0.0) for r in table)
        raise DistillError(f"predict.target_{key}={target}: no threshold reaches it on the {len(texts)} reviewed "
                           f"random texts (at best {top:.2f}); lower the target or review more texts")
    log.info("predict: threshold %.2f for %s %.2f (precision %.2f, recall %.2f, %s predicted %s, on %d reviewed "
             "random texts)", best["threshold"], key, target, best["precision"] or 0, best["recall"] or 0,
             f"{100 * best['share_positive']:.0f}%", labels[positive], len(texts))
    return float(best["threshold"])


def run(cfg: DictConfig) -> dict:
    if not cfg.input:
        raise DistillError("stage=predict needs a file: python -m distill stage=predict input=FILE "
                           "(CSV, TSV, JSONL or parquet)")
    input_path = Path(os.path.expanduser(cfg.input))
    if not input_path.is_file():
        raise DistillError(f"input={cfg.input}: no such file")
    file_format(input_path)  # an unknown extension fails before any model is loaded
    out = artifacts.predictions_path(cfg, input_path)
    if not (cfg.predict.engine == Engine.ray and out.suffix.lower() not in FORMATS):  # ray: a folder of shards
        file_format(out)
    # Loaded here with either engine: a bad student path fails at once, an ONNX variant is exported once
    # (not by every actor), and the labels are known.
    predict_proba, labels, name = classifier(cfg)
    if cfg.predict.target_precision is not None or cfg.predict.target_recall is not None:
        cfg = cfg.copy()
        cfg.predict.threshold = threshold_from_answers(cfg, predict_proba, labels)
    columns = text_columns(cfg)
    if cfg.predict.engine == Engine.ray:
        from .. import ray_engine

        check_labels(labels, cfg.predict.positive_label)
        result = ray_engine.predict_file(input_path, out, partial(frame_predictor, for_workers(cfg)), labels, columns, cfg.ray,
                                         cfg.ray.batch_size or CHUNK_ROWS, cfg.predict.threshold,
                                         desc=f"predict {name} (ray)")
    else:
        result = predict_file(input_path, out, predict_proba, labels, columns, cfg.data.text_separator,
                              cfg.predict.batch_size, cfg.predict.threshold, cfg.predict.positive_label,
                              desc=f"predict {name}", encoding=cfg.data.encoding, sets=set_rule(cfg),
                              label_separator=cfg.data.label_separator)
    log.info("predict: %d rows (%d without text, kept and marked) -> %s", result["n_rows"],
             result["n_missing_text"], out)
    return {**result, "model": name}
