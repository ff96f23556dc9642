"""Students: fine-tune a small encoder on a teacher's labels, save it pipeline-ready, predict with it.

`train_student` writes a self-contained folder (weights, tokenizer, config with the label names, and
`distill_train.json`) that `transformers.pipeline("text-classification", model=folder)` loads as is;
`StudentClassifier` reads it back for batched scoring.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from tqdm.auto import tqdm
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments, set_seed)

from .config import StudentConfig, TrainConfig
from .device import resolve_device
from .errors import DistillError
from .hub import load_error, resolve_model_ref
from .losses import soft_cross_entropy

log = logging.getLogger(__name__)

TARGETS = ("soft", "hard")
META_FILE = "distill_train.json"


class DistillationTrainer(Trainer):
    """A Trainer that computes the loss itself: soft cross-entropy on float [B, K] teacher probabilities,
    plain cross-entropy on int [B] class ids."""

    # compute_loss returns a per-batch mean, so the Trainer must still divide it for gradient accumulation
    loss_is_scaled_for_ga = False

    def __init__(self, *args, temperature: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = temperature

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        # the model must never see float labels: it would switch itself to multi-label BCE (docs/STYLE.md)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        if labels.is_floating_point() and labels.dim() == 2:
            loss = soft_cross_entropy(outputs.logits, labels, self.temperature)
        elif not labels.is_floating_point() and labels.dim() == 1:
            loss = F.cross_entropy(outputs.logits.float(), labels)
        else:
            raise ValueError(f"labels must be float [B, K] probabilities or int [B] class ids, "
                             f"got {labels.dtype} {tuple(labels.shape)}")
        return (loss, outputs) if return_outputs else loss


def load_student(ref: str, labels: Sequence[str]):
    """Tokenizer and model with a K-way head named after `labels`; a head of another size is replaced."""
    path = resolve_model_ref(ref, "student.model")
    id2label = dict(enumerate(labels))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True)
    except (OSError, ValueError) as e:
        raise load_error(ref, "student.model", e) from e
    return tokenizer, model


def make_targets(probs: np.ndarray, kind: str) -> list:
    """Per-example targets: `soft` keeps the teacher's probability rows, `hard` takes their argmax."""
    if kind == "soft":
        return probs.astype(np.float32).tolist()  # lists of floats reach the model as float32 [B, K]
    if kind == "hard":
        return probs.argmax(axis=1).tolist()  # ints reach the model as int64 [B]
    raise DistillError(f"train.targets='{kind}' is not one of {', '.join(TARGETS)}")


def encode(tokenizer, texts: Sequence[str], targets: list, max_length: int) -> list[dict]:
    """Tokenized examples, unpadded: DataCollatorWithPadding pads each batch to its own longest text."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    return [{**{key: enc[key][i] for key in enc.keys()}, "labels": targets[i]} for i in range(len(texts))]


def training_args(train: TrainConfig, out_dir: Path, n_texts: int) -> TrainingArguments:
    if not 0 <= train.warmup_ratio < 1:
        raise DistillError(f"train.warmup_ratio must be in [0, 1), got {train.warmup_ratio}")
    device = resolve_device(train.device)
    steps = math.ceil(n_texts / train.batch_size) * train.epochs
    return TrainingArguments(
        output_dir=str(out_dir / "checkpoints"), num_train_epochs=train.epochs, learning_rate=train.lr,
        per_device_train_batch_size=train.batch_size, weight_decay=train.weight_decay,
        # transformers 5 removed warmup_ratio: a float in [0, 1) given as warmup_steps is read as the ratio
        warmup_steps=float(train.warmup_ratio), seed=train.seed, report_to=[], save_strategy="no",
        logging_steps=max(1, min(50, int(steps) // 10)), disable_tqdm=False,
        use_cpu=device.type == "cpu", bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
        dataloader_pin_memory=device.type == "cuda")


def check_inputs(texts: Sequence[str], probs, labels: Sequence[str]) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float32)
    if len(texts) == 0:
        raise DistillError("train: there are no texts to train on")
    if probs.shape != (len(texts), len(labels)):
        raise DistillError(f"train: teacher probabilities have shape {probs.shape}, expected "
                           f"({len(texts)}, {len(labels)}) for {len(texts)} texts and {len(labels)} labels; "
                           "re-run stage=label")
    return probs


def build_trainer(texts, probs, labels, student: StudentConfig, train: TrainConfig,
                  out_dir: Path) -> DistillationTrainer:
    """The trainer `train_student` runs: seeded student, unpadded examples, dynamic padding."""
    targets = make_targets(check_inputs(texts, probs, labels), train.targets)
    set_seed(train.seed)  # the new head is drawn at load time, before the Trainer seeds anything
    tokenizer, model = load_student(student.model, labels)
    return DistillationTrainer(
        model=model, args=training_args(train, Path(out_dir), len(texts)), processing_class=tokenizer,
        train_dataset=encode(tokenizer, texts, targets, student.max_length),
        data_collator=DataCollatorWithPadding(tokenizer), temperature=train.temperature)


def train_student(texts: list[str], probs: np.ndarray, labels: list[str], student: StudentConfig,
                  train: TrainConfig, out_dir: Path) -> dict:
    """Fine-tune `student.model` on the teacher's probabilities; save a pipeline-ready folder at out_dir."""
    out_dir, probs = Path(out_dir), check_inputs(texts, probs, labels)
    trainer = build_trainer(texts, probs, labels, student, train, out_dir)
    log.info("training student %s on %d texts (%s targets)", student.name, len(texts), train.targets)
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    trainer.save_model(str(out_dir))
    trainer.processing_class.save_pretrained(out_dir)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    summary = {"out_dir": str(out_dir), "train_loss": float(result.training_loss),
               "seconds": round(seconds, 2), "n_texts": len(texts)}
    write_meta(out_dir, summary, probs, labels, student, train)
    return summary


def write_meta(out_dir: Path, summary: dict, probs: np.ndarray, labels, student, train) -> None:
    counts = np.bincount(probs.argmax(axis=1), minlength=len(labels)).tolist()
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


class StudentClassifier:
    """A trained student folder, loaded for batched prediction of label probabilities."""

    def __init__(self, folder, device: str = "auto", max_length: int | None = None):
        self.folder = Path(os.path.expanduser(str(folder)))
        if not (self.folder / "config.json").is_file():
            raise DistillError(f"student folder '{self.folder}' holds no trained student; run stage=train first "
                               "(or point eval.student_path at a folder that train_student wrote)")
        meta_path = self.folder / META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.folder).to(self.device).eval()
        id2label = self.model.config.id2label
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.name = meta.get("student", {}).get("name") or self.folder.name
        # the length it was trained at; for a foreign folder, what both tokenizer and positions allow
        self.max_length = max_length or meta.get("student", {}).get("max_length") or min(
            self.tokenizer.model_max_length, getattr(self.model.config, "max_position_embeddings", 512), 512)

    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Label probabilities, float32 [N, K], rows in input order."""
        if batch_size < 1:
            raise DistillError(f"batch_size must be >= 1, got {batch_size}")
        texts = list(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        # longest first (characters as a cheap proxy for tokens) so each batch pads little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        for start in tqdm(range(0, len(order), batch_size), desc=f"student {self.name}", unit="batch",
                          disable=not progress):
            idx = order[start:start + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(self.device)
            out[idx] = torch.softmax(self.model(**enc).logits.float(), dim=-1).cpu().numpy()
        return out

    def describe(self) -> dict:
        return {"name": self.name, "model": str(self.folder), "labels": self.labels,
                "num_parameters": self.model.num_parameters(), "device": str(self.device),
                "max_length": self.max_length}
