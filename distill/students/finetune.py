"""Students: fine-tune a small encoder on a teacher's labels, save it pipeline-ready, predict with it.

`train_student` writes a self-contained folder (weights, tokenizer, config with the label names, and
`distill_train.json`) that `transformers.pipeline("text-classification", model=folder)` loads as is;
`StudentClassifier` reads it back for batched scoring.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from .. import tracking
from ..config import StudentConfig, TrainConfig
from ..errors import DistillError
from ..runtime import fast_deberta
from ..runtime.device import STUDENT_CPU_MAX_TOKENS, resolve_device, world_size
from ..runtime.models import load_error, looks_local, resolve_model_ref
from .batched import TokenClassifier
from .folder import MULTI_LABEL, folder_meta, folder_size_mb, input_max_length, is_multi_label
from .layers import keep_first_layers
from .losses import hard_cross_entropy, multi_label_cross_entropy, soft_cross_entropy
from .trainset import LabelledTexts

log = logging.getLogger(__name__)

TARGETS = ("soft", "hard")


class DistillationTrainer(Trainer):
    """A Trainer that computes the loss itself: soft cross-entropy on float [B, K] teacher probabilities,
    plain cross-entropy on int [B] class ids, each optionally weighted per text (`weights` [B]); multi-label,
    binary cross-entropy a label on float [B, K] targets."""

    # compute_loss returns a per-batch mean, so the Trainer must still divide it for gradient accumulation
    loss_is_scaled_for_ga = False

    def __init__(self, *args, temperature: float = 1.0, multi_label: bool = False, pos_weight=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature, self.multi_label = temperature, multi_label
        self.pos_weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        # the model must never see float labels: transformers would switch it to multi-label BCE (loss ln 2, not ln K)
        labels = inputs.pop("labels")
        weights = inputs.pop("weights", None)
        outputs = model(**inputs)
        if self.multi_label:
            loss = multi_label_cross_entropy(outputs.logits, labels, weights, self.pos_weight)
        elif labels.is_floating_point() and labels.dim() == 2:
            loss = soft_cross_entropy(outputs.logits, labels, self.temperature, weights)
        elif not labels.is_floating_point() and labels.dim() == 1:
            loss = hard_cross_entropy(outputs.logits, labels, weights)
        else:
            raise ValueError(f"labels must be float [B, K] probabilities or int [B] class ids, "
                             f"got {labels.dtype} {tuple(labels.shape)}")
        return (loss, outputs) if return_outputs else loss


def load_student(ref: str, labels: Sequence[str], layers: int | None = None, multi_label: bool = False):
    """Tokenizer and model with a K-way head named after `labels`; a head of another size is replaced.
    With `layers`, only the encoder's first `layers` transformer layers are kept. `multi_label`: the config
    says so (problem_type), and `pipeline("text-classification")` then applies a sigmoid a label."""
    path = resolve_model_ref(ref, "student.model")
    id2label = dict(enumerate(labels))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True, **({"problem_type": MULTI_LABEL} if multi_label else {}))
    except (OSError, ValueError) as e:
        raise load_error(ref, "student.model", e) from e
    return tokenizer, keep_first_layers(model, layers)


def make_targets(probs: np.ndarray, kind: str, sets: np.ndarray | None = None) -> list:
    """Per-example targets: `soft` keeps the teacher's probability rows, `hard` takes their argmax (multi-label,
    given the teacher's label `sets` [N, K]: their 0/1 rows)."""
    if kind == "soft":
        return probs.astype(np.float32).tolist()  # lists of floats reach the model as float32 [B, K]
    if kind == "hard" and sets is not None:
        return np.asarray(sets, dtype=np.float32).tolist()
    if kind == "hard":
        return probs.argmax(axis=1).tolist()  # ints reach the model as int64 [B]
    raise DistillError(f"train.targets='{kind}' is not one of {', '.join(TARGETS)}")


def encode(tokenizer, data: LabelledTexts, kind: str, max_length: int) -> list[dict]:
    """Tokenized examples, unpadded: DataCollatorWithPadding pads each batch to its own longest text."""
    targets = make_targets(data.probs, kind, data.sets)
    enc = tokenizer(list(data.texts), truncation=True, max_length=max_length)
    cut = sum(len(ids) >= max_length for ids in enc["input_ids"])
    if cut:
        log.info("%d of %d texts are longer than student.max_length=%d tokens: the student sees their first %d "
                 "(raise student.max_length to see more, at some speed)", cut, len(data), max_length, max_length)
    rows = [{**{key: enc[key][i] for key in enc.keys()}, "labels": targets[i]} for i in range(len(data))]
    if data.weights is not None:
        for row, w in zip(rows, data.weights.tolist()):
            row["weights"] = float(w)
    return rows


def agreement_metric(eval_pred) -> dict:
    """Validation agreement with the teacher (the student's argmax against the teacher's, soft or hard),
    the cross-entropy against the teacher's labels, and `selection`: agreement, ties broken by the lower
    cross-entropy. Agreement is what the student is for; the loss alone chases the teacher's confidence
    (soft targets of an unsure teacher), agreement alone ties on small validation splits."""
    logits, targets = eval_pred.predictions, eval_pred.label_ids
    logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits, dtype=np.float64)
    teacher = targets.argmax(axis=1) if targets.ndim == 2 else targets
    z = logits - logits.max(axis=1, keepdims=True)
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = targets if targets.ndim == 2 else np.eye(logits.shape[1])[targets]
    cross_entropy = float(-(p * log_q).sum(axis=1).mean())
    agreement = float((logits.argmax(axis=1) == teacher).mean())
    return {"agreement": agreement, "cross_entropy": cross_entropy,
            "selection": agreement - 1e-3 * min(cross_entropy, 100.0)}


def set_metric(eval_pred) -> dict:
    """Multi-label validation against the teacher's label sets (the validation split's targets are always its
    sets): how the student's sets (sigmoid >= 0.5) match them (micro-F1), the binary cross-entropy, their mean
    average precision, and `selection`: that mAP, ties broken by the lower cross-entropy. The mAP is
    threshold-free: a student that ranks texts right for a label the teacher gives 3% of them is kept even
    before its sigmoid reaches 0.5 on them (the per-label thresholds fitted afterwards find the cut)."""
    from sklearn.metrics import average_precision_score

    from ..evaluation.multilabel import set_agreement

    logits, targets = eval_pred.predictions, eval_pred.label_ids
    logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    p = np.clip(1.0 / (1.0 + np.exp(-logits)), 1e-7, 1 - 1e-7)
    bce = float(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean())
    sets = (targets >= 0.5).astype(int)
    agreement = set_agreement((p >= 0.5).astype(int), sets)
    given = sets.sum(0) > 0
    ap = float(average_precision_score(sets[:, given], p[:, given], average="macro")) if given.any() else 0.0
    return {"agreement": agreement, "cross_entropy": bce, "map": ap, "selection": ap - 1e-3 * min(bce, 100.0)}


THRESHOLD_FITS = ("rate", "f1")


def fit_thresholds(probs: np.ndarray, sets: np.ndarray, how: str = "rate") -> list[float]:
    """Per label, a threshold on the student's probability fitted to the teacher's label sets on the validation
    split (no gold). `rate`: the student gives the label to as many validation texts as the teacher did (the cut
    midway between the n-th and the next most probable text), which keeps the teacher's labels a text; `f1`: the
    cut that maximises that label's F1 against the teacher's sets (candidates midway between the probabilities
    seen). A label the teacher never gave there: above every validation text (`rate`), 0.5 (`f1`).

    `rate` is the default: on GoEmotions (28 labels, each given to 1-4% of texts by the teacher) the F1 cut of a
    student that ranks well but not sharply lets 8.7 labels a text through against the teacher's 1.26."""
    from sklearn.metrics import f1_score

    if how not in THRESHOLD_FITS:
        raise DistillError(f"train.thresholds='{how}' is not one of {', '.join(THRESHOLD_FITS)}")
    out = []
    for k in range(probs.shape[1]):
        p, y = probs[:, k], sets[:, k]
        if how == "rate":
            ranked, n = np.sort(p)[::-1], int(y.sum())
            below = ranked[n] if n < len(ranked) else ranked[-1] / 2
            above = ranked[n - 1] if n else 1.0
            cut = (above + below) / 2
            if above == below:  # a tie across the n-th text: take the whole tied block or none of it, the nearer
                with_ties, without = int((p >= above).sum()), int((p > above).sum())
                cut = above if with_ties - n <= n - without else np.nextafter(above, np.inf)
            out.append(float(cut))
            continue
        if y.sum() == 0:
            out.append(0.5)
            continue
        seen = np.unique(p)
        cuts = np.concatenate([[seen[0]], (seen[1:] + seen[:-1]) / 2]) if len(seen) > 1 else seen
        scores = [f1_score(y, p >= c, zero_division=0) for c in cuts]
        out.append(round(float(cuts[int(np.argmax(scores))]), 6))
    return out


def training_args(train: TrainConfig, out_dir: Path, n_texts: int, validate: bool = False) -> TrainingArguments:
    return TrainingArguments(**training_kwargs(train, out_dir, n_texts, validate))


def training_kwargs(train: TrainConfig, out_dir: Path, n_texts: int, validate: bool = False) -> dict:
    """TrainingArguments for the student, as keyword arguments (txtai's HFTrainer takes them so)."""
    if not 0 <= train.warmup_ratio < 1:
        raise DistillError(f"train.warmup_ratio must be in [0, 1), got {train.warmup_ratio}")
    if train.grad_accum < 1 or train.batch_size < 1 or train.evals_per_epoch < 1:
        raise DistillError("train.batch_size, train.grad_accum and train.evals_per_epoch must be >= 1")
    device = resolve_device(train.device)
    gpus = torch.cuda.device_count()
    if device.type == "cuda" and world_size() > gpus:  # NCCL refuses two ranks on one GPU, deep in its setup
        raise DistillError(f"{world_size()} training processes (WORLD_SIZE) but {gpus} CUDA GPU(s) visible: "
                           f"each process needs a GPU of its own; launch {gpus} (torchrun --nproc_per_node {gpus}, "
                           f"accelerate launch --num_processes {gpus}), or train CPU processes with train.device=cpu")
    steps_per_epoch = max(1, math.ceil(n_texts / (train.batch_size * train.grad_accum)))
    every = max(1, steps_per_epoch // train.evals_per_epoch)  # validation and checkpoint interval, in steps
    selection = dict(eval_strategy="steps", eval_steps=every, load_best_model_at_end=True,
                     metric_for_best_model="selection", greater_is_better=True,
                     per_device_eval_batch_size=max(64, train.batch_size)) if validate else {}
    return dict(
        output_dir=str(out_dir / "checkpoints"), num_train_epochs=train.epochs, learning_rate=train.lr,
        per_device_train_batch_size=train.batch_size, gradient_accumulation_steps=train.grad_accum,
        weight_decay=train.weight_decay,
        # transformers 5 removed warmup_ratio: a float in [0, 1) given as warmup_steps is read as the ratio
        warmup_steps=float(train.warmup_ratio), seed=train.seed, data_seed=train.seed,
        report_to=tracking.report_to(),  # ["wandb"] while logger=wandb has a run open: it logs there
        save_strategy="steps", save_steps=every, save_total_limit=2, **selection,
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        remove_unused_columns=False,  # keep `weights` for compute_loss
        logging_steps=max(1, min(50, steps_per_epoch * int(math.ceil(train.epochs)) // 10)), disable_tqdm=False,
        use_cpu=device.type == "cpu", bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
        fp16=device.type == "cuda" and not torch.cuda.is_bf16_supported(),
        dataloader_pin_memory=device.type == "cuda")


def build_trainer(data: LabelledTexts, val: LabelledTexts | None, labels, student: StudentConfig,
                  train: TrainConfig, out_dir: Path) -> DistillationTrainer:
    """The trainer `train_student` runs: seeded student, unpadded examples, dynamic padding."""
    set_seed(train.seed)  # the new head is drawn at load time, before the Trainer seeds anything
    multi = data.sets is not None
    tokenizer, model = load_student(student.model, labels, student.layers, multi_label=multi)
    callbacks = [TimeBudget(train.max_minutes, validate=val is not None)] if train.max_minutes is not None else []
    if val is not None and train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=train.early_stopping_patience))
    return DistillationTrainer(
        model=model, args=training_args(train, Path(out_dir), len(data), validate=val is not None),
        processing_class=tokenizer,
        train_dataset=encode(tokenizer, data, train.targets, student.max_length),
        # multi-label validation scores against the teacher's sets, whatever the student learns from
        eval_dataset=encode(tokenizer, val, "hard" if multi else train.targets, student.max_length)
        if val is not None else None,
        compute_metrics=(set_metric if multi else agreement_metric) if val is not None else None,
        data_collator=DataCollatorWithPadding(tokenizer), temperature=train.temperature, callbacks=callbacks,
        multi_label=multi, pos_weight=data.pos_weight)


class TimeBudget(TrainerCallback):
    """train.max_minutes: after the step that passes the budget, validate and save once more and stop; the
    Trainer then keeps the best checkpoint as it does at the end of a full run."""

    def __init__(self, minutes: float, validate: bool):  # minutes > 0: checked with the other train options
        self.seconds, self.validate, self.start, self.stopped_at = 60 * float(minutes), validate, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and time.monotonic() - self.start >= self.seconds:
            self.stopped_at = {"minutes": round(self.seconds / 60, 2), "epoch": round(float(state.epoch or 0), 2),
                               "step": int(state.global_step)}
            log.warning("train: stopping at the time limit (train.max_minutes=%g) after %.2f of %g epochs; the best "
                        "checkpoint so far is kept (raise train.max_minutes, or null, to train longer)",
                        self.seconds / 60, self.stopped_at["epoch"], args.num_train_epochs)
            control.should_training_stop = True
            control.should_evaluate = self.validate
            control.should_save = True
        return control


CHECKPOINT_DONE = "trainer_state.json"  # the Trainer writes it after the weights, optimizer and scheduler


def last_checkpoint(out_dir: Path, train: TrainConfig) -> str | None:
    """The newest finished checkpoint to resume from. A run killed while saving leaves a checkpoint folder
    without its trainer state (transformers' own get_last_checkpoint would pick it, and resuming would fail):
    it is skipped, with a warning, and the one before it is used."""
    folder = Path(out_dir) / "checkpoints"
    if not (train.resume and folder.is_dir()):
        return None
    candidates = sorted((p for p in folder.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()),
                        key=lambda p: int(p.name.rsplit("-", 1)[-1]), reverse=True)
    for path in candidates:
        if (path / CHECKPOINT_DONE).is_file():
            found = str(path)
            break
        log.warning("train: %s was not finished (no %s; the run was stopped while saving it): not resumed from",
                    path, CHECKPOINT_DONE)
    else:
        found = None
    if found:
        log.info("resuming the interrupted training from %s", found)
    return found


def _step(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else None


def finetune(data: LabelledTexts, val: LabelledTexts | None, labels, student, train, out_dir: Path) -> dict:
    """Fine-tune the whole encoder with the distillation loss (transformers Trainer)."""
    trainer = build_trainer(data, val, labels, student, train, out_dir)
    result = trainer.train(resume_from_checkpoint=last_checkpoint(out_dir, train))
    thresholds = None
    if data.sets is not None:  # per-label thresholds that reproduce the teacher's sets on the validation split
        if val is not None:
            logits = trainer.predict(trainer.eval_dataset).predictions
            probs = 1.0 / (1.0 + np.exp(-np.asarray(logits[0] if isinstance(logits, tuple) else logits, np.float64)))
            thresholds = fit_thresholds(probs, val.sets, str(train.thresholds))
        else:
            thresholds = [0.5] * len(labels)
        trainer.model.config.distill_thresholds = thresholds  # saved in config.json beside problem_type
        trainer.model.config.distill_none_label = data.none_label  # in a set exactly when no other label is
    trainer.save_model(str(out_dir))  # rank 0 only, under torchrun / accelerate launch
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(out_dir)
    summary = {"train_loss": float(result.training_loss), "steps": int(result.global_step)}
    if thresholds is not None:
        summary["thresholds"] = dict(zip(labels, thresholds))
    budget = next((c for c in trainer.callback_handler.callbacks if isinstance(c, TimeBudget)), None)
    if budget is not None and budget.stopped_at:
        summary["stopped_at_time_limit"] = budget.stopped_at
    if val is not None:
        best = next((h for h in trainer.state.log_history
                     if h.get("step") == _step(trainer.state.best_model_checkpoint) and "eval_agreement" in h), {})
        summary["val_agreement"] = best.get("eval_agreement")
        summary["val_cross_entropy"] = best.get("eval_cross_entropy")
        summary["best_checkpoint"] = Path(trainer.state.best_model_checkpoint or "").name or None
    return summary


class StudentClassifier(TokenClassifier):
    """A trained student folder, loaded for batched prediction of label probabilities."""

    def __init__(self, folder, device: str = "auto", max_length: int | None = None):
        self.folder = Path(os.path.expanduser(str(folder)))
        local = (self.folder / "config.json").is_file()
        if not local and (looks_local(str(folder)) or self.folder.exists()):
            raise DistillError(f"student folder '{self.folder}' holds no trained student; run stage=train first "
                               "(or point eval.student_path at a folder that train_student wrote)")
        meta = folder_meta(self.folder)
        self.device = resolve_device(device)
        source = str(self.folder) if local else str(folder)  # else a hub id of a fine-tuned classifier
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForSequenceClassification.from_pretrained(source).to(self.device).eval()
        except (OSError, ValueError) as e:
            raise load_error(str(folder), "model", e) from e
        fast_deberta.install(self.model)  # a DeBERTa-v2/v3 student: same logits, less CPU time
        id2label = self.model.config.id2label
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.multi_label = is_multi_label(self.model.config)
        self.name = meta.get("student", {}).get("name") or self.folder.name
        self.max_length = max_length or input_max_length(self.folder, self.tokenizer, self.model.config)
        self.max_tokens = STUDENT_CPU_MAX_TOKENS if self.device.type == "cpu" else None

    @torch.inference_mode()
    def _probs(self, batch) -> np.ndarray:
        batch = batch.to(self.device)
        logits = self.model(**batch).logits.float()
        return (torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)).cpu().numpy()

    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def size_mb(self) -> float:
        weights = self.folder / "model.safetensors"
        return folder_size_mb(self.folder, [weights.name]) if weights.is_file() else folder_size_mb(self.folder)

    def describe(self) -> dict:
        return {"name": self.name, "model": str(self.folder), "labels": self.labels,
                "num_parameters": self.num_parameters(), "device": str(self.device),
                "max_length": self.max_length}
