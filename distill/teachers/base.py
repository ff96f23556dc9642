"""The one interface every teacher implements: label names in, a probability matrix out."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np


class Teacher(ABC):
    """A zero-shot labeller: `predict_proba(texts)` gives float32 [N, K] scores over `labels`.

    Rows come back in input order. Single-label teachers return rows that sum to 1; multi-label
    teachers score each label on its own (a row need not sum to 1).
    """

    name: str
    labels: list[str]
    # The teacher.* settings that change the labels this kind gives: the label cache key is built from them
    # (distill.artifacts.teacher_identity). Every setting of TeacherConfig is in a kind's LABEL_KEYS, in its
    # EXPLICIT_KEYS or in SPEED_KEYS (tests/test_teachers.py checks it), so a new one cannot be forgotten.
    # `descriptions_file`, `label_text`, `shortlist` and `ranker` enter the key as what they make (the descriptions the file holds, the
    # label texts that differ from the names): distill.artifacts.teacher_identity.
    LABEL_KEYS: tuple[str, ...] = ("kind", "model", "template", "templates", "descriptions", "multi_label",
                                   "max_length", "descriptions_file", "label_text", "shortlist", "ranker")
    # Settings that change the labels only when given explicitly: their default (`auto`) is the machine's own
    # choice, kept out of the key so a labelling keeps its key from one machine to the next.
    EXPLICIT_KEYS: tuple[str, ...] = ()
    PROMPTED = True  # labels are read from prompts (template, descriptions); a trained classifier's are not
    SPEED_KEYS = ("name", "batch_size", "max_tokens", "device", "hub_id")  # how fast or how named, never what
    # Which teacher to use (teacher=auto, distill/weak/choice.py: its choice file has a key of its own) and how its
    # probabilities become label sets (multi-label: in the student's key, distill.artifacts.student_identity):
    # neither changes a teacher's probabilities.
    CHOICE_KEYS = ("candidates", "sample", "auto_from", "chosen_by", "label_sets")

    @classmethod
    def extra_identity(cls, settings: dict) -> dict:
        """What else, beyond its settings, makes this teacher's labels (e.g. a trained model's weights)."""
        return {}

    @abstractmethod
    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
        """Float32 [len(texts), len(labels)] probabilities; `progress` shows a bar on long calls."""

    def batch_size_for(self, n_texts: int) -> int:
        """The `batch_size` that makes one forward pass over `n_texts` texts (NLI counts pairs)."""
        return n_texts

    def describe(self) -> dict:
        """JSON-able settings that determine the outputs, written next to the labels they produced."""
        return {"kind": type(self).__name__, "name": self.name, "labels": list(self.labels)}


def top_margin(probs: np.ndarray) -> np.ndarray:
    """[N] gap between each row's two largest probabilities (with one label: its probability, against 0)."""
    if probs.shape[1] < 2:
        return probs[:, 0].copy()
    top2 = np.partition(probs, probs.shape[1] - 2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]
