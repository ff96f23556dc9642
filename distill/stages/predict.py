"""Stage `predict`: a trained student (or the teacher) labels a file of new texts.

    python -m distill stage=predict input=new_reviews.csv [predict.threshold=0.7] [predict.model=teacher]
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from .. import artifacts
from ..classifiers import load_classifier
from ..errors import DistillError
from ..predict import file_format, predict_file
from ..teachers import build_teacher
from .evaluate import find_student

log = logging.getLogger(__name__)
MODELS = ("student", "teacher")


def output_path(cfg: DictConfig, input_path: Path) -> Path:
    if cfg.predict.output:
        return Path(os.path.expanduser(cfg.predict.output))
    return artifacts.outputs_root(cfg) / "predictions" / f"{input_path.stem}.predictions{input_path.suffix}"


def classifier(cfg: DictConfig):
    """(predict_proba(texts, batch_size), labels, name) of the model predict.model names."""
    labels = list(cfg.data.labels)
    if cfg.predict.model == "teacher":
        teacher = build_teacher(cfg.teacher, labels)
        return (lambda texts, bs: teacher.predict_proba(texts, batch_size=teacher.batch_size_for(bs))), labels, cfg.teacher.name
    if cfg.predict.model != "student":
        raise DistillError(f"predict.model='{cfg.predict.model}' is not one of {', '.join(MODELS)}")
    if cfg.predict.student_path:
        folder = Path(os.path.expanduser(cfg.predict.student_path))
    else:
        folder = find_student(cfg)
    model = load_classifier(folder, device=cfg.predict.device, variant=cfg.predict.variant)
    return (lambda texts, bs: model.predict_proba(texts, batch_size=bs)), list(model.labels), model.name


def run(cfg: DictConfig) -> dict:
    if not cfg.input:
        raise DistillError("stage=predict needs a file: python -m distill stage=predict input=FILE "
                           "(CSV, TSV, JSONL or parquet)")
    input_path = Path(os.path.expanduser(cfg.input))
    if not input_path.is_file():
        raise DistillError(f"input={cfg.input}: no such file")
    file_format(input_path)  # an unknown extension fails before any model is loaded
    out = output_path(cfg, input_path)
    file_format(out)
    predict_proba, labels, name = classifier(cfg)
    columns = [cfg.predict.text_column] if cfg.predict.text_column else list(cfg.data.text_columns)
    result = predict_file(input_path, out, predict_proba, labels, columns, cfg.data.text_separator,
                          cfg.predict.batch_size, cfg.predict.threshold, cfg.predict.positive_label,
                          desc=f"predict {name}")
    log.info("predict: %d rows (%d without text, kept and marked) -> %s", result["n_rows"],
             result["n_missing_text"], out)
    return {**result, "model": name}
