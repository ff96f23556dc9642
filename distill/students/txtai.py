"""txtai's HFTrainer as the student trainer for hard teacher labels (the seed notebook's recipe).

HFTrainer fine-tunes with the plain transformers Trainer and cross-entropy on integer labels, so it
serves `train.targets=hard` only; soft targets and per-text weights need the distillation loss of
`train.trainer=transformers`. The student is handed over already built (model, tokenizer) so its head
carries the data's label names, and the same validation split, selection metric, early stopping and
checkpoint resume apply (early stopping excepted: HFTrainer takes no callbacks).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DistillError, require
from .finetune import agreement_metric, last_checkpoint, load_student, training_kwargs
from .trainset import LabelledTexts


def _rows(data: LabelledTexts) -> list[dict]:
    return [{"text": t, "label": int(y)} for t, y in zip(data.texts, data.probs.argmax(axis=1))]


def txtai_finetune(data: LabelledTexts, val: LabelledTexts | None, labels, student, train, out_dir: Path) -> dict:
    if train.targets != "hard":
        raise DistillError("train.trainer=txtai trains on hard labels only (txtai's HFTrainer uses plain "
                           "cross-entropy): set train.targets=hard, or train.trainer=transformers for soft targets")
    if data.weights is not None:
        raise DistillError("train.trainer=txtai cannot weight texts (train.class_balance, "
                           "train.confidence_weighting or a `weight` column): use train.trainer=transformers, "
                           "or train.min_confidence to drop texts instead")
    HFTrainer = require("txtai", "train.trainer=txtai", "txtai.pipeline")[0].HFTrainer
    out_dir = Path(out_dir)
    tokenizer, model = load_student(student.model, labels, student.layers)
    args = training_kwargs(train, out_dir, len(data), validate=val is not None)
    args.pop("remove_unused_columns")  # txtai's Labels rows hold only what the model takes
    # HFTrainer has no callbacks argument, so no early stopping here; with a validation split the best
    # checkpoint (validation agreement) is still the one kept (load_best_model_at_end).
    model, tokenizer = HFTrainer()((model, tokenizer), _rows(data), validation=_rows(val) if val is not None else None,
                                   maxlength=student.max_length, metrics=agreement_metric if val is not None else None,
                                   checkpoint=last_checkpoint(out_dir, train), **args)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"train_loss": None, "trainer": "txtai.HFTrainer"}
