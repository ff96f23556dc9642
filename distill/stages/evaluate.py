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
from ..config import multi_label, none_index
from ..data import has_gold, load_heldout
from ..errors import DistillError
from ..evaluation.compare import measure, render, speedups, weights_size_mb
from ..evaluation.metrics import agreement, label_ids
from ..evaluation.report import write_report
from ..evaluation.timing import machine, throughput
from ..labelling import label_split
from ..labelstore import read_labels
from ..review.estimate import estimate
from ..review.estimate import render as render_reviewed
from ..students.folder import folder_meta, student_label
from ..students.load import load_classifier
from ..students.onnx import available_variants
from ..teachers import build_teacher

log = logging.getLogger(__name__)

FEW_UNSEEN = 100  # fewer unseen texts than this behind a gold-free agreement: say how loose it is


def evaluate_teacher(cfg: DictConfig, texts: list[str], gold: np.ndarray) -> tuple[dict, np.ndarray]:
    labels = list(cfg.data.labels)
    teacher = build_teacher(cfg.teacher, labels)
    held = label_split(cfg, "heldout", teacher=teacher)  # cached and resumable like any labelling
    probs = read_labels(held.path, labels)[1]
    speed = time_model(cfg, lambda t, bs: teacher.predict_proba(t, batch_size=teacher.batch_size_for(bs)), texts,
                       "teacher")
    return measure(cfg.teacher.name, "teacher", probs, gold, speed, cfg, teacher_info(cfg, teacher)), probs


def evaluate_weak(cfg: DictConfig, texts: list[str], gold: np.ndarray) -> tuple[dict, np.ndarray]:
    """stage=weak's held-out labels, scored in the teacher's place, timed as all its sources."""
    probs, path = weak_heldout(cfg)
    entry = measure(weak_name(cfg), "teacher", probs, gold, weak_speed(cfg, texts), cfg,
                    {"kind": "weak", "model": str(path)})
    return entry, probs


def weak_name(cfg: DictConfig) -> str:
    return f"weak-{cfg.weak.name} ({cfg.weak.label_model})"


def weak_speed(cfg: DictConfig, texts: list[str]) -> dict:
    """A weak-supervision label model's speed on new texts, as a throughput() result: each text goes through
    every source in turn, so its seconds a text are the sum of theirs (each teacher timed as a teacher is, the
    labelling functions together; the label model's own combination, a few array operations, is left out). Its
    latencies are the sums of theirs, which for the p95 is an upper bound."""
    from ..weak.sources import build_sources

    labels, parts, lfs = list(cfg.data.labels), [], []
    for source in build_sources(cfg):
        if source.is_teacher:
            teacher = build_teacher(source.cfg.teacher, labels)
            parts.append(time_model(cfg, lambda t, bs, m=teacher: m.predict_proba(t, batch_size=m.batch_size_for(bs)),
                                    texts, source.name))
            del teacher  # one teacher in memory at a time
        else:
            lfs.append(source.apply)
    if lfs:
        parts.append(time_model(cfg, lambda t, bs: [apply(t) for apply in lfs], texts, "labelling functions"))
    speed = {}
    for bs in cfg.eval.batch_sizes:
        per_text = sum(p[bs]["seconds"] / p[bs]["n_texts"] for p in parts)
        speed[bs] = {"samples_per_s": 1 / per_text, "seconds": per_text * parts[0][bs]["n_texts"],
                     "n_texts": parts[0][bs]["n_texts"], "repeats": min(p[bs]["repeats"] for p in parts),
                     **{k: sum(p[bs][k] for p in parts) for k in ("latency_ms_p50", "latency_ms_p95")}}
    return speed


def weak_heldout(cfg: DictConfig) -> tuple[np.ndarray, "os.PathLike"]:
    """stage=weak's held-out probabilities (checked to be for this held-out set) and their file."""
    folder = artifacts.weak_dir(cfg)
    path, summary = folder / "heldout.parquet", folder / "summary.json"
    if not path.exists() or not summary.exists():
        raise DistillError(f"no combined held-out labels at {path}: run `python -m distill stage=weak` first")
    current = json.loads(json.dumps(artifacts.data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))
                                    ["heldout"], default=str))
    if json.loads(summary.read_text()).get("heldout_identity") != current:
        raise DistillError(f"{path} was written for another held-out set: run `python -m distill stage=weak` again")
    return read_labels(path, list(cfg.data.labels))[1], path


def time_model(cfg: DictConfig, predict, texts: list[str], desc: str) -> dict:
    """Samples/s of `predict` at each of eval.batch_sizes, within eval.bench_seconds a batch size."""
    return throughput(predict, texts, cfg.eval.batch_sizes, cfg.eval.bench_texts, cfg.eval.warmup_batches, desc=desc,
                      repeats=cfg.eval.repeats, budget_s=cfg.eval.bench_seconds)


def run_student(cfg: DictConfig, folder: Path, texts: list[str], variant: str) -> tuple[np.ndarray, dict, dict]:
    """One student export on the texts: (its probabilities, its speed, what it is), for either kind of eval."""
    student = load_classifier(folder, device=cfg.train.device if variant == "torch" else "cpu", variant=variant)
    if list(student.labels) != list(cfg.data.labels):
        raise DistillError(f"student at {folder} predicts {student.labels}, the data config has {list(cfg.data.labels)}")
    probs = student.predict_proba(texts, batch_size=max(cfg.eval.batch_sizes), progress=True)
    speed = time_model(cfg, lambda t, bs: student.predict_proba(t, batch_size=bs), texts, variant)
    meta = folder_meta(folder)
    info = {"kind": meta.get("student", {}).get("kind", "finetune"), "variant": variant,
            "targets": meta.get("train", {}).get("targets"), "model": str(getattr(student, "path", None) or folder),
            "size_mb": student.size_mb(), "num_parameters": student.num_parameters()}
    return probs, speed, info


def evaluate_student(cfg: DictConfig, folder: Path, texts: list[str], gold: np.ndarray | None,
                     variant: str = "torch", name: str | None = None,
                     teacher: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    probs, speed, info = run_student(cfg, folder, texts, variant)
    name = name or student_label(folder)
    return measure(name + ("" if variant == "torch" else f" {variant}"), "student", probs, gold, speed, cfg, info,
                   teacher=teacher), probs


def run_without_gold(cfg: DictConfig) -> dict:
    """No gold labels: each student against the teacher's labels on texts it never trained on (its seeded
    holdout of the labelled pool), the teacher's confidence and label shares over the pool, and speed."""
    labels = list(cfg.data.labels)
    folders = artifacts.find_students(cfg)
    log.info("eval: no gold labels; scoring %s against the teacher's labels (%s)",
             ", ".join(str(f) for f in folders), artifacts.trained_labels(cfg))
    batch_sizes, entries = list(cfg.eval.batch_sizes), []
    pool_texts, pool_probs = read_labels(artifacts.trained_labels(cfg), labels)
    first_path, first_rows = artifacts.unseen_rows(folders[0])
    bench = [read_labels(first_path, labels)[0][i] for i in first_rows]
    if cfg.eval.teacher:
        entries.append(teacher_without_gold(cfg, pool_probs, bench))
    n_unseen = set()
    for folder in folders:
        path, rows = artifacts.unseen_rows(folder)
        texts, probs = read_labels(path, labels)
        texts, teacher = [texts[i] for i in rows], probs[rows]
        n_unseen.add(len(rows))
        for variant in available_variants(folder, list(cfg.eval.variants)):
            entry, _ = evaluate_student(cfg, folder, texts, None, variant, student_label(folder), teacher=teacher)
            entry["n_unseen"] = len(rows)
            entries.append(entry)
    n_texts = max(n_unseen)
    if n_texts < FEW_UNSEEN:  # worst case (p = 0.5) of a 95% normal interval: 0.98 / sqrt(n)
        log.warning("eval: the agreement with the teacher rests on %d unseen texts, good to about +-%.0f points at "
                    "95%%; label more texts for a number to rely on", n_texts, 98 / n_texts ** 0.5)
    speedups(entries, batch_sizes)
    table = render(entries, batch_sizes, n_texts, cfg.data.name, gold=False)
    return write_eval(cfg, entries, table, n_texts=n_texts, gold=False, n_pool=len(pool_texts), folders=folders)


def teacher_without_gold(cfg: DictConfig, pool_probs: np.ndarray, bench: list[str]) -> dict:
    """The teacher's row: its confidence and label shares over the labelled pool, its speed (a weak-supervision
    label model's: all its sources')."""
    if artifacts.uses_weak(cfg):
        return measure(weak_name(cfg), "teacher", pool_probs, None, weak_speed(cfg, bench), cfg, {"kind": "weak"})
    teacher = build_teacher(cfg.teacher, list(cfg.data.labels))
    speed = time_model(cfg, lambda t, bs: teacher.predict_proba(t, batch_size=teacher.batch_size_for(bs)), bench,
                       "teacher")
    return measure(cfg.teacher.name, "teacher", pool_probs, None, speed, cfg, teacher_info(cfg, teacher))


def teacher_info(cfg: DictConfig, teacher) -> dict:
    model = getattr(teacher, "model", None)
    return {"kind": str(cfg.teacher.kind), "variant": "torch" if cfg.teacher.kind != "onnx" else "onnx",
            "model": str(cfg.teacher.model), "size_mb": weights_size_mb(cfg.teacher.model),
            "num_parameters": model.num_parameters() if hasattr(model, "num_parameters") else None}


def reviewed(cfg: DictConfig, folders: list[Path]) -> dict | None:
    """The models on the person's answers (review.answers), when there are any: see review/estimate.py."""
    answers = artifacts.review_answers(cfg)
    if not len(answers):
        return None
    labels, path = list(cfg.data.labels), artifacts.trained_labels(cfg)
    probs = np.full((len(answers), len(labels)), np.nan)
    if path.exists():
        pool_texts, pool_probs = read_labels(path, labels)
        index = {t: i for i, t in enumerate(pool_texts)}
        have = [i for i, t in enumerate(answers.texts) if t in index]
        probs[have] = pool_probs[[index[answers.texts[i]] for i in have]]
    missing = np.flatnonzero(np.isnan(probs).any(1))
    if len(missing) and not artifacts.uses_weak(cfg):  # answers from outside the labelled pool: label them now
        teacher = build_teacher(cfg.teacher, labels)
        probs[missing] = teacher.predict_proba([answers.texts[i] for i in missing])
    unknown = np.isnan(probs).any(1)
    name = f"weak-{cfg.weak.name}" if artifacts.uses_weak(cfg) else cfg.teacher.name
    models = [{"name": name, "role": "teacher", "probs": np.nan_to_num(probs), "seen": unknown}]
    for folder in folders:
        student = load_classifier(folder, device=cfg.train.device)
        seen = artifacts.trained_texts(folder, answers)
        models.append({"name": student_label(folder), "role": "student",
                       "probs": student.predict_proba(answers.texts, batch_size=max(cfg.eval.batch_sizes)),
                       "seen": np.array([t in seen for t in answers.texts])})
    section = estimate(answers, models, labels, cfg.predict.positive_label)
    log.info("eval: %d reviewed texts (%s) from %s", len(answers),
             ", ".join(f"{n} {p}" for p, n in section["parts"].items()), ", ".join(answers.files))
    return section


def write_eval(cfg: DictConfig, entries: list[dict], table: str, n_texts: int, gold: bool, **extra) -> dict:
    """metrics.json, metrics.md, report.md and its plots in this config's eval folder; the stage's result."""
    out = artifacts.report_dir(cfg)
    folders = extra.pop("folders", [])
    section = None if extra.get("multi_label") else reviewed(cfg, folders)
    if section:
        extra["reviewed"] = section
        table = table + "\n" + render_reviewed(section)
    if cfg.teacher.get("chosen_by"):  # the teacher was chosen without gold (distill/weak/choice.py)
        from ..weak.choice import chosen_line

        extra["teacher_choice"] = chosen_line(cfg.teacher)
    metrics = {"data": cfg.data.name, "gold": gold, "n_heldout": n_texts, "labels": list(cfg.data.labels),
               "batch_sizes": list(cfg.eval.batch_sizes), "models": entries, **extra, "machine": machine()}
    artifacts.write_json(out / "metrics.json", metrics)
    (out / "metrics.md").write_text(table)
    report, plots = write_report(out, metrics, table, plots=cfg.eval.plots)
    print("\n" + table)
    log.info("eval: %d %s texts scored -> %s", n_texts, "held-out" if gold else "unseen", out / "metrics.json")
    print(f"report: {report}")
    key = "micro_f1" if extra.get("multi_label") and gold else "accuracy" if gold else "agreement_with_teacher"
    return {"eval_dir": str(out), "report": str(report), "plots": [str(p) for p in plots], "gold": gold,
            **{f"{e['role']}_{key}": e.get(key) for e in entries if e.get("variant", "torch") == "torch"},
            "models": entries, **({"reviewed": section} if section else {})}


def run_multi_label(cfg: DictConfig) -> dict:
    """Multi-label: the teacher's label sets (teacher.label_sets) and each student's (its per-label thresholds)
    against the gold sets of the held-out texts, or, without gold, each student's sets against the teacher's on
    texts it never trained on; speed as for single-label."""
    from ..evaluation import multilabel as ml
    from ..evaluation.compare import measure_sets, render_sets
    from ..students.folder import none_index_of, thresholds_of

    labels, batch_sizes = list(cfg.data.labels), list(cfg.eval.batch_sizes)
    weak, rule = artifacts.uses_weak(cfg), artifacts.sets_rule(cfg)  # stage=weak's label model in the teacher's place
    folders = artifacts.find_students(cfg)
    gold_known = has_gold(cfg.data)
    teacher = build_teacher(cfg.teacher, labels) if not weak and (gold_known or cfg.eval.teacher) else None
    none = none_index(cfg)
    if gold_known:
        held = load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))
        texts = held.texts
        gold = ml.gold_sets(held.gold, labels, cfg.data.multi_label)
        teacher_probs = weak_heldout(cfg)[0] if weak else \
            read_labels(label_split(cfg, "heldout", teacher=teacher).path, labels)[1]
        teacher_sets = ml.rule_sets(teacher_probs, rule, none=none)
    else:
        path, rows = artifacts.unseen_rows(folders[0])
        all_texts, all_probs = read_labels(path, labels)
        texts, teacher_probs, gold = [all_texts[i] for i in rows], all_probs[rows], None
        teacher_sets = ml.rule_sets(all_probs, rule, none=none)[rows]  # as the student's were made: over the file
    entries = []
    if cfg.eval.teacher:
        if weak:  # several models, timed one after another
            name, speed, info = weak_name(cfg), weak_speed(cfg, texts), {"kind": "weak"}
        else:
            name, info = cfg.teacher.name, teacher_info(cfg, teacher)
            speed = time_model(cfg, lambda t, bs: teacher.predict_proba(t, batch_size=teacher.batch_size_for(bs)),
                               texts, "teacher")
        entry = measure_sets(name, "teacher", teacher_probs, teacher_sets, gold, speed, info, labels, teacher_sets)
        entries.append({**entry, "label_sets": rule})
    for folder in folders:
        thresholds = thresholds_of(folder)
        if thresholds is None:
            raise DistillError(f"student at {folder} is single-label (a softmax over labels); this run is multi-label: "
                               f"train it again here (stage=train) for a sigmoid a label")
        for variant in available_variants(folder, list(cfg.eval.variants)):
            probs, speed, info = run_student(cfg, folder, texts, variant)
            name = student_label(folder) + ("" if variant == "torch" else f" {variant}")
            sets = ml.threshold(probs, thresholds, none=none_index_of(folder))
            entries.append(measure_sets(name, "student", probs, sets, gold, speed, info, labels, teacher_sets))
    speedups(entries, batch_sizes)
    table = render_sets(entries, batch_sizes, len(texts), cfg.data.name, gold=gold_known)
    return write_eval(cfg, entries, table, n_texts=len(texts), gold=gold_known, multi_label=True, folders=[])


def run(cfg: DictConfig) -> dict:
    if cfg.eval.repeats < 1:  # checked before anything is loaded or timed
        raise DistillError(f"eval.repeats must be at least 1 (timed passes at each batch size), "
                           f"got {cfg.eval.repeats}")
    if multi_label(cfg):
        return run_multi_label(cfg)
    if not has_gold(cfg.data):
        return run_without_gold(cfg)
    held = load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))
    gold = label_ids(held.gold, list(cfg.data.labels))
    folders = artifacts.find_students(cfg)
    batch_sizes = list(cfg.eval.batch_sizes)
    entries, teacher_probs = [], None
    if cfg.eval.teacher and artifacts.uses_weak(cfg):
        entry, teacher_probs = evaluate_weak(cfg, held.texts, gold)
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
        for variant in available_variants(folder, list(cfg.eval.variants)):
            entry, probs = evaluate_student(cfg, folder, held.texts, gold, variant, name, teacher=teacher_probs)
            if teacher_probs is not None:
                entry["agreement_with_teacher"] = agreement(probs, teacher_probs)
            entries.append(entry)
    if teacher_probs is not None:
        entries[0]["agreement_with_teacher"] = 1.0
    speedups(entries, batch_sizes)
    table = render(entries, batch_sizes, len(held.texts), cfg.data.name)
    return write_eval(cfg, entries, table, n_texts=len(held.texts), gold=True, folders=folders)
