"""Stage `eval`: teacher and student side by side on the same held-out texts.

Accuracy and macro-F1 against gold, student-teacher agreement, and samples per second at each batch
size in `eval.batch_sizes`. Writes metrics.json and metrics.md, and prints the table.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from .. import artifacts
from ..benchmark import throughput
from ..data import load_heldout
from ..errors import DistillError
from ..labelstore import read_labels
from ..metrics import agreement, label_ids, markdown_table, score
from ..students import StudentClassifier
from ..teachers import build_teacher
from .label import label_split

log = logging.getLogger(__name__)


def find_student(cfg: DictConfig) -> Path:
    path = Path(os.path.expanduser(cfg.eval.student_path)) if cfg.eval.student_path else artifacts.student_dir(cfg)
    if not (path / "config.json").exists():
        raise DistillError(f"no trained student at {path}: run `python -m distill stage=train` with the same "
                           f"overrides first, or set eval.student_path")
    return path


def _entry(name: str, role: str, probs: np.ndarray, gold: np.ndarray, speed: dict, info: dict) -> dict:
    return {"name": name, "role": role, **score(probs, gold, probs.shape[1]),
            "samples_per_s": {str(bs): round(r["samples_per_s"], 2) for bs, r in speed.items()}, **info}


def evaluate_teacher(cfg: DictConfig, texts: list[str], gold: np.ndarray) -> tuple[dict, np.ndarray]:
    labels = list(cfg.data.labels)
    teacher = build_teacher(cfg.teacher, labels)
    held = label_split(cfg, "heldout", teacher=teacher)  # cached and resumable like any labelling
    probs = read_labels(held.path, labels)[1]
    speed = throughput(lambda t, bs: teacher.predict_proba(t, batch_size=teacher.batch_size_for(bs)), texts,
                       cfg.eval.batch_sizes, cfg.eval.bench_texts, cfg.eval.warmup_batches, desc="teacher")
    return _entry(cfg.teacher.name, "teacher", probs, gold, speed, {"model": str(cfg.teacher.model)}), probs


def evaluate_student(cfg: DictConfig, folder: Path, texts: list[str], gold: np.ndarray) -> tuple[dict, np.ndarray]:
    student = StudentClassifier(folder, device=cfg.train.device)
    if list(student.labels) != list(cfg.data.labels):
        raise DistillError(f"student at {folder} predicts {student.labels}, the data config has {list(cfg.data.labels)}")
    probs = student.predict_proba(texts, batch_size=max(cfg.eval.batch_sizes), progress=True)
    speed = throughput(lambda t, bs: student.predict_proba(t, batch_size=bs), texts,
                       cfg.eval.batch_sizes, cfg.eval.bench_texts, cfg.eval.warmup_batches, desc="student")
    name = f"{cfg.student.name} ({cfg.train.targets})"
    return _entry(name, "student", probs, gold, speed, {"model": str(folder)}), probs


def render(entries: list[dict], batch_sizes: list[int], n_texts: int, data: str) -> str:
    header = ["model", "role", "accuracy", "macro-F1", "agreement w/ teacher"]
    header += [f"samples/s @{bs}" for bs in batch_sizes]
    rows = [[e["name"], e["role"], e["accuracy"], e["macro_f1"], e.get("agreement_with_teacher")]
            + [e["samples_per_s"][str(bs)] for bs in batch_sizes] for e in entries]
    title = f"### {data}: {n_texts} held-out texts\n\n"
    table = markdown_table(header, rows)
    teacher = next((e for e in entries if e["role"] == "teacher"), None)
    notes = []
    for e in entries:
        if teacher and e is not teacher:
            ratios = ", ".join(f"{e['samples_per_s'][str(bs)] / teacher['samples_per_s'][str(bs)]:.1f}x @{bs}"
                               for bs in batch_sizes)
            notes.append(f"- {e['name']} speed-up over the teacher: {ratios}")
    return title + table + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


def run(cfg: DictConfig) -> dict:
    held = load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))
    gold = label_ids(held.gold, list(cfg.data.labels))
    folder = find_student(cfg)
    entries, teacher_probs = [], None
    if cfg.eval.teacher:
        entry, teacher_probs = evaluate_teacher(cfg, held.texts, gold)
        entries.append(entry)
    entry, student_probs = evaluate_student(cfg, folder, held.texts, gold)
    if teacher_probs is not None:
        entries[0]["agreement_with_teacher"] = 1.0
        entry["agreement_with_teacher"] = agreement(student_probs, teacher_probs)
    entries.append(entry)
    table = render(entries, list(cfg.eval.batch_sizes), len(held.texts), cfg.data.name)
    out = artifacts.eval_dir(cfg)
    metrics = {"data": cfg.data.name, "n_heldout": len(held.texts), "labels": list(cfg.data.labels),
               "batch_sizes": list(cfg.eval.batch_sizes), "models": entries}
    artifacts.write_json(out / "metrics.json", metrics)
    (out / "metrics.md").write_text(table)
    print("\n" + table)
    log.info("eval: %d held-out texts scored -> %s", len(held.texts), out / "metrics.json")
    return {"eval_dir": str(out), **{f"{e['role']}_accuracy": e["accuracy"] for e in entries}, "models": entries}
