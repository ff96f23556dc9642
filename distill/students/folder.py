"""What a student folder is and holds: the one place that answers "is this a student, of which kind,
trained on what?" from the files in it.

    <folder>/config.json             a fine-tuned transformers classifier (student.kind=finetune)
    <folder>/distill_student.json    {"kind": "embedding_lr", ...}: a frozen encoder + logistic regression
    <folder>/distill_train.json      written last by stage=train: the training summary (a finished student)
    <folder>/distill_config.json     the label file and the whole config the student was made with
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from ..config import StudentKind
from ..errors import DistillError, no_room

META_FILE = "distill_train.json"
SPEC_FILE = "distill_student.json"
RECORD_FILE = "distill_config.json"
SUMMARY_KEYS = ("train_loss", "seconds", "n_texts", "n_val", "val_agreement")
MULTI_LABEL = "multi_label_classification"  # config.problem_type of a multi-label student: a sigmoid a label


def is_multi_label(config) -> bool:
    """A classifier's transformers config says it scores each label on its own (sigmoid), not a softmax."""
    return getattr(config, "problem_type", None) == MULTI_LABEL


def _multi_label_spec(folder) -> dict | None:
    """A multi-label student's (labels, thresholds, none label), from config.json (fine-tuned: problem_type,
    `distill_thresholds`, `distill_none_label`) or distill_student.json (embedding_lr: `multi_label`,
    `thresholds`, `none_label`); None for a single-label student."""
    folder = Path(folder)
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
        if config.get("problem_type") != MULTI_LABEL:
            return None
        labels = [label for _, label in sorted((int(i), v) for i, v in (config.get("id2label") or {}).items())]
        return {"labels": labels, "thresholds": config.get("distill_thresholds") or [0.5] * len(labels),
                "none_label": config.get("distill_none_label")}
    if (folder / SPEC_FILE).is_file():
        spec = json.loads((folder / SPEC_FILE).read_text())
        if not spec.get("multi_label"):
            return None
        labels = list(spec["labels"])
        return {"labels": labels, "thresholds": spec.get("thresholds") or [0.5] * len(labels),
                "none_label": spec.get("none_label")}
    return None


def thresholds_of(folder) -> list[float] | None:
    """A multi-label student's per-label decision thresholds (set by training on the teacher-labelled validation
    split); None for a single-label student."""
    spec = _multi_label_spec(folder)
    return None if spec is None else spec["thresholds"]


def none_index_of(folder) -> int | None:
    """The index, in the student's own labels, of the "none of these" label a multi-label student was trained
    with (from data.none_label), or None. Its sets are made as they were when its thresholds were fitted,
    whatever a later run's data.none_label says."""
    spec = _multi_label_spec(folder)
    if spec is None or spec["none_label"] not in spec["labels"]:
        return None
    return spec["labels"].index(spec["none_label"])


def probabilities(logits, multi_label: bool):
    """numpy logits [N, K] -> probabilities: a sigmoid a label (multi-label) or a softmax over the labels."""
    import numpy as np

    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


@contextmanager
def reading(folder):
    """Around the loading of a student's files: a folder whose files are damaged (truncated, overwritten) is
    a one-line error naming it and how to rebuild it, never a traceback; a full disk while exporting is not."""
    try:
        yield
    except (DistillError, ImportError, MemoryError):
        raise
    except Exception as e:  # safetensors, tokenizers, json and onnx each say "damaged" their own way
        if no_room(e):
            raise
        first = next((x for x in str(e).splitlines() if x.strip()), type(e).__name__)[:200]
        raise DistillError(f"the student in {folder} cannot be read ({type(e).__name__}: {first}); if its files "
                           f"were damaged, delete that folder and run stage=train again with the same settings to "
                           f"rebuild it") from e


def folder_meta(folder: Path) -> dict:
    """distill_train.json of a student folder, {} when there is none."""
    path = Path(folder) / META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def kind_of(folder: Path) -> StudentKind | None:
    """The kind of student in `folder`, None when it holds none."""
    folder = Path(folder)
    spec = folder / SPEC_FILE
    if spec.is_file() and json.loads(spec.read_text()).get("kind") == StudentKind.embedding_lr.value:
        return StudentKind.embedding_lr
    return StudentKind.finetune if (folder / "config.json").is_file() else None


def is_student(folder: Path) -> bool:
    """A folder a classifier loads from: a transformers model or an embedding + LR student."""
    return (Path(folder) / "config.json").is_file() or (Path(folder) / SPEC_FILE).is_file()


def is_trained(folder: Path) -> bool:
    """stage=train finished this folder (distill_train.json is written last)."""
    return (Path(folder) / META_FILE).is_file()


def trained_summary(folder: Path) -> dict:
    """The summary a finished training recorded in `folder` (for a cache hit's result)."""
    return {k: v for k, v in folder_meta(folder).items() if k in SUMMARY_KEYS}


def trained_on(folder: Path) -> str | None:
    """The label file a student learned from (what stage=train recorded), or None."""
    path = Path(folder) / RECORD_FILE
    return json.loads(path.read_text()).get("labels_path") if path.is_file() else None


def student_label(folder: Path) -> str:
    """`<student name> (<targets>)`, how eval and reports name a student."""
    meta = folder_meta(folder)
    return f"{meta.get('student', {}).get('name') or Path(folder).name} ({meta.get('train', {}).get('targets', '?')})"


def folder_size_mb(folder: Path, names: Sequence[str] | None = None) -> float:
    """Megabytes on disk of a model: the named files, else every file under the folder."""
    folder = Path(folder)
    files = [folder / n for n in names] if names else [p for p in folder.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files if p.is_file()) / 2 ** 20, 2)


def input_max_length(folder: Path, tokenizer, config) -> int:
    """The longest input a student folder is given: the length it was trained at, else (a foreign folder)
    what both its tokenizer and its position table allow."""
    return folder_meta(folder).get("student", {}).get("max_length") or min(
        tokenizer.model_max_length, getattr(config, "max_position_embeddings", 512), 512)
