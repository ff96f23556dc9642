"""Scores against gold labels, agreement between models, and the markdown table people read."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def label_ids(names: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    return np.array([index[n] for n in names], dtype=np.int64)


def score(probs: np.ndarray, gold: np.ndarray, n_labels: int) -> dict:
    """Accuracy and macro-F1 of the argmax predictions (every label counted in the macro average)."""
    pred = probs.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro", labels=list(range(n_labels)), zero_division=0)),
    }


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Share of texts on which two models pick the same label."""
    return float((probs_a.argmax(axis=1) == probs_b.argmax(axis=1)).mean())


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
