"""Stable, content-keyed artifact paths under `paths.outputs`.

`train` finds what `label` wrote, and a sweep over student settings reuses one labelling, because every
path is derived from the settings that change its content (never from a timestamp):

    outputs/labels/<data>/<teacher>-<split>-<key>/labels.parquet      teacher probabilities (split: pool|heldout)
    outputs/students/<data>/<teacher>-<student>-<targets>-<key>/            fine-tuned student folder
    outputs/eval/<data>/<same name as the student>/metrics.{json,md}       side-by-side scores
    outputs/weak/<data>/<weak>-<key>/{pool,heldout}.parquet, summary.{json,md}   combined labels (stage=weak)
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .config import TeacherConfig
from .data import data_fingerprint

# Teacher settings that change the labels; batch size and device only change the speed.
TEACHER_KEYS = ("kind", "model", "template", "templates", "descriptions", "multi_label", "max_length", "temperature",
                "variant")
# Precision moves the labels of a few near-tie texts (bf16 against float32 without the recheck: 0.3% of SST-2,
# 1.5% of AG News), so an explicit teacher.dtype, teacher.compile or teacher.recheck_margin is a different
# labelling; the default (`auto`: the machine's own choice) is left out (a labelling keeps its key from one
# machine to the next, and keys made before these were counted stay valid).
PRECISION_KEYS = ("dtype", "compile", "recheck_margin")
# Student/train settings that change the student; `labels_path` is covered by the label key.
TRAIN_EXCLUDE = ("device", "labels_path", "overwrite", "resume")


def stable_hash(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def outputs_root(cfg: DictConfig) -> Path:
    return Path(os.path.expanduser(cfg.paths.outputs))


def teacher_identity(cfg: DictConfig) -> dict:
    teacher = OmegaConf.to_container(cfg.teacher, resolve=True)
    # Unset options are left out, so adding a new option to the schema keeps existing keys valid.
    identity = {k: teacher[k] for k in TEACHER_KEYS if teacher.get(k) not in (None, {}, [])}
    for key in PRECISION_KEYS:  # YAML reads compile: false as a bool
        default = str(getattr(TeacherConfig, key)).lower()
        value = str(teacher.get(key, default)).lower()
        if value != default:
            identity[key] = value
    if teacher.get("kind") == "classifier":  # a retrained folder at the same path is another teacher
        from .teachers.classifier import model_fingerprint

        identity["fingerprint"] = model_fingerprint(teacher["model"])
    return identity


def label_identity(cfg: DictConfig, split: str = "pool") -> dict:
    """Everything that determines the teacher's labels of a split: its texts, the label names, the teacher."""
    return {
        "data": data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))[split],
        "labels": list(cfg.data.labels),
        "teacher": teacher_identity(cfg),
    }


def labels_dir(cfg: DictConfig, split: str = "pool") -> Path:
    key = stable_hash(label_identity(cfg, split))
    return outputs_root(cfg) / "labels" / cfg.data.name / f"{cfg.teacher.name}-{split}-{key}"


def labels_file(cfg: DictConfig, split: str = "pool") -> Path:
    return labels_dir(cfg, split) / "labels.parquet"


def weak_identity(cfg: DictConfig) -> dict:
    """Everything that determines the combined labels of stage=weak: the pool, every source, the label model."""
    from .weak.sources import active_teachers, lf_identity, teacher_config

    weak = cfg.weak
    settings = OmegaConf.to_container(weak, resolve=True)
    for key in ("name", "teachers", "keywords", "regex", "hook"):
        settings.pop(key, None)
    return {
        "data": data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))["pool"],
        "labels": list(cfg.data.labels),
        "teachers": {name: teacher_identity(teacher_config(cfg, name, spec)) for name, spec in active_teachers(weak)},
        "lfs": lf_identity(weak),
        "settings": settings,
    }


def weak_dir(cfg: DictConfig) -> Path:
    key = stable_hash(weak_identity(cfg))
    return outputs_root(cfg) / "weak" / cfg.data.name / f"{cfg.weak.name}-{key}"


def uses_weak(cfg: DictConfig) -> bool:
    """The student learns from stage=weak's combined labels: `weak` is set and no explicit labels_path."""
    return cfg.get("weak") is not None and not cfg.train.labels_path


def student_identity(cfg: DictConfig) -> dict:
    train = OmegaConf.to_container(cfg.train, resolve=True)
    labels = weak_identity(cfg) if uses_weak(cfg) else label_identity(cfg)
    return {
        "labels": str(cfg.train.labels_path) if cfg.train.labels_path else labels,
        # options left at None (e.g. student.layers) stay out, so adding one keeps earlier students' names
        "student": {k: v for k, v in OmegaConf.to_container(cfg.student, resolve=True).items() if v is not None},
        "train": {k: v for k, v in train.items() if k not in TRAIN_EXCLUDE},
    }


def run_name(cfg: DictConfig) -> str:
    key = stable_hash(student_identity(cfg))
    source = f"weak-{cfg.weak.name}" if uses_weak(cfg) else cfg.teacher.name
    return f"{source}-{cfg.student.name}-{cfg.train.targets}-{key}"


def student_dir(cfg: DictConfig) -> Path:
    return outputs_root(cfg) / "students" / cfg.data.name / run_name(cfg)


def eval_dir(cfg: DictConfig) -> Path:
    return outputs_root(cfg) / "eval" / cfg.data.name / run_name(cfg)


def write_json(path: Path, obj) -> None:
    """Write JSON atomically: a crash never leaves a half-written file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
