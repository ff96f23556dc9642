"""Teachers: zero-shot labellers behind one interface (`base.Teacher`), looked up by `teacher.kind`."""
from __future__ import annotations

from ..config import TeacherConfig
from ..errors import DistillError
from .base import Teacher
from .classifier import ClassifierTeacher
from .embedding import EmbeddingTeacher
from .nli import NLITeacher
from .onnx_nli import ONNXNLITeacher
from .shortlist import ShortlistTeacher, shortlist_k

TEACHERS = {"nli": NLITeacher, "embedding": EmbeddingTeacher, "onnx": ONNXNLITeacher, "classifier": ClassifierTeacher}


def identity_keys() -> tuple[set[str], set[str]]:
    """(the settings that change some kind's labels, those that do when given explicitly), over every kind.
    The label key takes the union, not the configured kind's own: keys made before the kinds declared their
    settings held them all, and stay valid so."""
    return ({k for cls in TEACHERS.values() for k in cls.LABEL_KEYS},
            {k for cls in TEACHERS.values() for k in cls.EXPLICIT_KEYS})


def build_teacher(cfg: TeacherConfig, labels: list[str]) -> Teacher:
    """The teacher `cfg.kind` names, for these label names (in id order)."""
    labels = list(labels)
    if not labels:
        raise DistillError("the teacher needs at least one label name: set data.labels")
    if len(labels) == 1 and not cfg.multi_label:
        raise DistillError(f"data.labels is {labels}: a classifier chooses between at least two labels (with one, "
                           f"every text gets it with probability 1.0). For a yes/no question give both, e.g. "
                           f"[{labels[0]}, not {labels[0]}], or score the label on its own with teacher.multi_label=true")
    if len(set(labels)) != len(labels):
        raise DistillError(f"data.labels repeats a name: {labels}")
    if cfg.kind == "auto":
        raise DistillError("teacher=auto is a choice among teacher.candidates, made when a stage starts "
                           "(distill.stages.resolve_teacher); it cannot label by itself")
    if cfg.kind not in TEACHERS:
        raise DistillError(f"teacher.kind '{cfg.kind}' is unknown; known kinds: {', '.join(sorted(TEACHERS))}")
    teacher = TEACHERS[cfg.kind](cfg, labels)
    k = shortlist_k(cfg, len(labels))
    return ShortlistTeacher(teacher, cfg, labels, k) if k else teacher


__all__ = ["TEACHERS", "Teacher", "identity_keys", "NLITeacher", "EmbeddingTeacher", "ONNXNLITeacher", "ClassifierTeacher",
           "build_teacher"]
