"""Teachers: zero-shot labellers behind one interface (`base.Teacher`), looked up by `teacher.kind`."""
from __future__ import annotations

from ..config import TeacherConfig
from ..errors import DistillError
from .base import Teacher
from .classifier import ClassifierTeacher
from .embedding import EmbeddingTeacher
from .nli import NLITeacher
from .onnx_nli import ONNXNLITeacher

TEACHERS = {"nli": NLITeacher, "embedding": EmbeddingTeacher, "onnx": ONNXNLITeacher, "classifier": ClassifierTeacher}


def build_teacher(cfg: TeacherConfig, labels: list[str]) -> Teacher:
    """The teacher `cfg.kind` names, for these label names (in id order)."""
    labels = list(labels)
    if not labels:
        raise DistillError("the teacher needs at least one label name: set data.labels")
    if len(set(labels)) != len(labels):
        raise DistillError(f"data.labels repeats a name: {labels}")
    if cfg.kind not in TEACHERS:
        raise DistillError(f"teacher.kind '{cfg.kind}' is unknown; known kinds: {', '.join(sorted(TEACHERS))}")
    return TEACHERS[cfg.kind](cfg, labels)


__all__ = ["TEACHERS", "Teacher", "NLITeacher", "EmbeddingTeacher", "ONNXNLITeacher", "ClassifierTeacher",
           "build_teacher"]
