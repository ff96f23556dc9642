"""Stage `eval`: the teacher and every student side by side on the same held-out texts.

For each model: accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix, expected
calibration error (and off-by-one accuracy for ordinal labels), agreement with the teacher; samples per
second at each of `eval.batch_sizes` after a warm-up, latency p50/p95 per batch, size on disk,
parameter count, and the speed-up over the teacher from the same run. Fine-tuned students are also
exported to ONNX and dynamic int8 (`eval.variants`) and measured the same way.

`eval.students=this` scores the configured student; `all` every student trained on this data with this
teacher (or weak-label set). Writes metrics.json, metrics.md and report.md with PNG plots.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from .. import artifacts
from ..evaluation.timing import machine, throughput
from ..students.base import folder_meta, folder_size_mb, load_classifier
from ..data import load_heldout
from ..errors import DistillError
from ..labelstore import classifier_teacher_of, read_labels
from ..evaluation.metrics import agreement, full_report, label_ids, markdown_table
from ..evaluation.report import write_report
from ..teachers import build_teacher
from .label import label_split

log = logging.getLogger(__name__)
WEIGHT_FILES = (".safetensors", ".bin", ".onnx", ".pt")


def _is_student(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "distill_student.json").is_file()


def find_student(cfg: DictConfig) -> Path:
    path = Path(os.path.expanduser(cfg.eval.student_path)) if cfg.eval.student_path else artifacts.student_dir(cfg)
    if not _is_student(path):
        raise DistillError(f"no trained student at {path}: run `python -m distill stage=train` with the same "
                           f"overrides first, or set eval.student_path")
    return path


def source_name(cfg: DictConfig) -> str:
    return f"weak-{cfg.weak.name}" if artifacts.uses_weak(cfg) else cfg.teacher.name


def find_students(cfg: DictConfig) -> list[Path]:
    """`eval.students`: this config's student, or all trained on the labels this config's label (or weak)
    stage wrote: every student of one labelling, whatever its model or training settings."""
    if cfg.eval.students == "this" or cfg.eval.student_path:
        return [find_student(cfg)]
    if cfg.eval.students != "all":
        raise DistillError(f"eval.students='{cfg.eval.students}' is not one of this, all")
    root = artifacts.outputs_root(cfg) / "students" / cfg.data.name
    labels = artifacts.weak_dir(cfg) / "pool.parquet" if artifacts.uses_weak(cfg) else artifacts.labels_file(cfg)
    trained = [p for p in sorted(root.glob(f"{source_name(cfg)}-*"))
               if _is_student(p) and (p / "distill_train.json").is_file()]
    # this labelling's students, then those that learned from labels one of them wrote (a teacher assistant)
    wanted, found = {_resolved(labels)}, []
    while True:
        new = [p for p in trained if p not in found and _resolved(_trained_on(p)) in wanted]
        if not new:
            break
        found += new
        wanted |= _labels_written_by(new, artifacts.outputs_root(cfg) / "labels" / cfg.data.name)
    found.sort()
    if not found:
        raise DistillError(f"eval.students=all: no trained student under {root} for {source_name(cfg)}; "
                           "run stage=train first")
    return found


def _resolved(path) -> str | None:
    return str(Path(os.path.expanduser(str(path))).resolve()) if path else None


def _labels_written_by(students: list[Path], labels_root: Path) -> set[str]:
    """The label files under `labels_root` that one of `students` wrote as a classifier teacher."""
    folders = {_resolved(p) for p in students}
    written = set()
    for labels in labels_root.glob("*/labels.parquet"):
        teacher = classifier_teacher_of(labels)
        if teacher and _resolved(teacher.get("model")) in folders:
            written.add(_resolved(labels))
    return written


def _trained_on(folder: Path) -> str | None:
    """The label file a student learned from (what stage=train recorded), or None."""
    path = folder / "distill_config.json"
    return json.loads(path.read_text()).get("labels_path") if path.is_file() else None


def weights_size_mb(ref: str) -> float | None:
    path = Path(os.path.expanduser(str(ref)))
    if not path.is_dir():
        return None  # a hub id: its size is not known here
    return folder_size_mb(path, [p.name for p in path.iterdir() if p.suffix in WEIGHT_FILES])


def measure(name: str, role: str, probs: np.ndarray, gold: np.ndarray, speed: dict, cfg: DictConfig,
            info: dict) -> dict:
    """One row of the comparison: quality against gold, and speed from `speed` (a throughput() result)."""
    entry = {"name": name, "role": role, **full_report(probs, gold, list(cfg.data.labels), cfg.data.ordinal),
             "samples_per_s": {str(bs): (round(r["samples_per_s"], 2) if r else None) for bs, r in speed.items()}}
    timed = [bs for bs, r in speed.items() if r]
    if timed:
        first = speed[min(timed)]
        entry["latency_ms"] = {"batch_size": min(timed), "p50": round(first["latency_ms_p50"], 2),
                               "p95": round(first["latency_ms_p95"], 2)}
    return {**entry, **info}


def evaluate_teacher(cfg: DictConfig, texts: list[str], gold: np.ndarray) -> tuple[dict, np.ndarray]:
    labels = list(cfg.data.labels)
    teacher = build_teacher(cfg.teacher, labels)
    held = label_split(cfg, "heldout", teacher=teacher)  # cached and resumable like any labelling
    probs = read_labels(held.path, labels)[1]
    speed = throughput(lambda t, bs: teacher.predict_proba(t, batch_size=teacher.batch_size_for(bs)), texts,
                       cfg.eval.batch_sizes, cfg.eval.bench_texts, cfg.eval.warmup_batches, desc="teacher",
                       repeats=cfg.eval.repeats)
    model = getattr(teacher, "model", None)
    info = {"kind": cfg.teacher.kind, "variant": "torch" if cfg.teacher.kind != "onnx" else "onnx",
            "model": str(cfg.teacher.model), "size_mb": weights_size_mb(cfg.teacher.model),
            "num_parameters": model.num_parameters() if hasattr(model, "num_parameters") else None}
    return measure(cfg.teacher.name, "teacher", probs, gold, speed, cfg, info), probs


def evaluate_weak(cfg: DictConfig, gold: np.ndarray) -> tuple[dict, np.ndarray]:
    """stage=weak's held-out labels, scored in the teacher's place (several models: not timed)."""
    folder = artifacts.weak_dir(cfg)
    path, summary = folder / "heldout.parquet", folder / "summary.json"
    if not path.exists() or not summary.exists():
        raise DistillError(f"no combined held-out labels at {path}: run `python -m distill stage=weak` first")
    current = json.loads(json.dumps(artifacts.data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))
                                    ["heldout"], default=str))
    if json.loads(summary.read_text()).get("heldout_identity") != current:
        raise DistillError(f"{path} was written for another held-out set: run `python -m distill stage=weak` again")
    probs = read_labels(path, list(cfg.data.labels))[1]
    entry = measure(f"weak-{cfg.weak.name} ({cfg.weak.label_model})", "teacher", probs, gold,
                    {bs: None for bs in cfg.eval.batch_sizes}, cfg, {"kind": "weak", "model": str(path)})
    return entry, probs


def variants_of(folder: Path, cfg: DictConfig) -> list[str]:
    """The variants of a student to measure: ONNX ones only for fine-tuned students, when onnxruntime is here."""
    wanted = list(cfg.eval.variants) or ["torch"]
    if not (folder / "config.json").is_file():
        return ["torch"]  # embedding + logistic regression: no export
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        dropped = [v for v in wanted if v != "torch"]
        if dropped:
            log.warning("eval: onnxruntime is not installed, so %s are not measured (pip install 'distill[onnx]')",
                        ", ".join(dropped))
        return [v for v in wanted if v == "torch"] or ["torch"]
    return wanted


def student_label(folder: Path) -> str:
    meta = folder_meta(folder)
    return f"{meta.get('student', {}).get('name') or folder.name} ({meta.get('train', {}).get('targets', '?')})"


def evaluate_student(cfg: DictConfig, folder: Path, texts: list[str], gold: np.ndarray,
                     variant: str = "torch", name: str | None = None) -> tuple[dict, np.ndarray]:
    student = load_classifier(folder, device=cfg.train.device if variant == "torch" else "cpu", variant=variant)
    if list(student.labels) != list(cfg.data.labels):
        raise DistillError(f"student at {folder} predicts {student.labels}, the data config has {list(cfg.data.labels)}")
    probs = student.predict_proba(texts, batch_size=max(cfg.eval.batch_sizes), progress=True)
    speed = throughput(lambda t, bs: student.predict_proba(t, batch_size=bs), texts,
                       cfg.eval.batch_sizes, cfg.eval.bench_texts, cfg.eval.warmup_batches, desc=variant,
                       repeats=cfg.eval.repeats)
    name = name or student_label(folder)
    meta = folder_meta(folder)
    path = getattr(student, "path", None)
    info = {"kind": meta.get("student", {}).get("kind", "finetune"), "variant": variant,
            "targets": meta.get("train", {}).get("targets"), "model": str(path or folder),
            "size_mb": student.size_mb(), "num_parameters": student.num_parameters()}
    return measure(name + ("" if variant == "torch" else f" {variant}"), "student", probs, gold, speed, cfg, info), probs


def speedups(entries: list[dict], batch_sizes: list[int]) -> None:
    """Each model's samples/s over the teacher's, batch size by batch size, from this one run."""
    teacher = next((e for e in entries if e["role"] == "teacher"), None)
    for e in entries:
        if teacher is None or e is teacher:
            continue
        e["speedup_vs_teacher"] = {str(bs): (round(e["samples_per_s"][str(bs)] / teacher["samples_per_s"][str(bs)], 2)
                                             if teacher["samples_per_s"].get(str(bs)) else None) for bs in batch_sizes}


def render(entries: list[dict], batch_sizes: list[int], n_texts: int, data: str) -> str:
    header = ["model", "role", "accuracy", "macro-F1", "agreement w/ teacher", "ECE"]
    header += [f"samples/s @{bs}" for bs in batch_sizes] + ["p50 / p95 ms", "MB", "params (M)"]
    rows = []
    for e in entries:
        latency = e.get("latency_ms")
        rows.append([e["name"], e["role"], e["accuracy"], e["macro_f1"], e.get("agreement_with_teacher"), e.get("ece")]
                    + [e["samples_per_s"].get(str(bs)) for bs in batch_sizes]
                    + [f"{latency['p50']:.1f} / {latency['p95']:.1f}" if latency else None, e.get("size_mb"),
                       round(e["num_parameters"] / 1e6, 1) if e.get("num_parameters") else None])
    title = f"### {data}: {n_texts} held-out texts\n\n"
    notes = [f"- {e['name']} speed-up over the teacher: "
             + ", ".join(f"{r:.1f}x @{bs}" for bs, r in e["speedup_vs_teacher"].items() if r is not None)
             for e in entries if any(v is not None for v in e.get("speedup_vs_teacher", {}).values())]
    return title + markdown_table(header, rows) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


def out_dir(cfg: DictConfig) -> Path:
    if cfg.eval.students == "all" and not cfg.eval.student_path:
        return artifacts.outputs_root(cfg) / "eval" / cfg.data.name / f"{source_name(cfg)}-all"
    return artifacts.eval_dir(cfg)


def run(cfg: DictConfig) -> dict:
    if cfg.eval.repeats < 1:  # checked before anything is loaded or timed
        raise DistillError(f"eval.repeats must be at least 1 (timed passes at each batch size), "
                           f"got {cfg.eval.repeats}")
    held = load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))
    gold = label_ids(held.gold, list(cfg.data.labels))
    folders = find_students(cfg)
    batch_sizes = list(cfg.eval.batch_sizes)
    entries, teacher_probs = [], None
    if cfg.eval.teacher and artifacts.uses_weak(cfg):
        entry, teacher_probs = evaluate_weak(cfg, gold)
        entries.append(entry)
    elif cfg.eval.teacher:
        entry, teacher_probs = evaluate_teacher(cfg, held.texts, gold)
        entries.append(entry)
    labels_seen: dict[str, int] = {}
    for folder in folders:
        name = student_label(folder)
        labels_seen[name] = labels_seen.get(name, 0) + 1
        if labels_seen[name] > 1:  # two students of one name and targets (a sweep): tell them apart
            name = f"{name} {folder.name.rsplit('-', 1)[-1]}"
        for variant in variants_of(folder, cfg):
            entry, probs = evaluate_student(cfg, folder, held.texts, gold, variant, name)
            if teacher_probs is not None:
                entry["agreement_with_teacher"] = agreement(probs, teacher_probs)
            entries.append(entry)
    if teacher_probs is not None:
        entries[0]["agreement_with_teacher"] = 1.0
    speedups(entries, batch_sizes)
    table = render(entries, batch_sizes, len(held.texts), cfg.data.name)
    out = out_dir(cfg)
    metrics = {"data": cfg.data.name, "n_heldout": len(held.texts), "labels": list(cfg.data.labels),
               "batch_sizes": batch_sizes, "models": entries, "machine": machine()}
    artifacts.write_json(out / "metrics.json", metrics)
    (out / "metrics.md").write_text(table)
    report, plots = write_report(out, metrics, table, plots=cfg.eval.plots)
    print("\n" + table)
    log.info("eval: %d held-out texts scored -> %s (report: %s)", len(held.texts), out / "metrics.json", report)
    return {"eval_dir": str(out), "report": str(report), "plots": [str(p) for p in plots],
            **{f"{e['role']}_accuracy": e["accuracy"] for e in entries if e.get("variant", "torch") == "torch"},
            "models": entries}
