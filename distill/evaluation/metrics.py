"""Scores against gold labels, agreement between models, and the markdown table people read."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


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


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = 15) -> float:
    """ECE of the top label: sum over equal-width confidence bins of |accuracy - confidence| x bin share."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == gold
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def full_report(probs: np.ndarray, gold: np.ndarray, labels: Sequence[str], ordinal: bool = False) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, the confusion matrix (rows gold,
    columns predicted), expected calibration error and, for ordinal labels, off-by-one accuracy."""
    k = len(labels)
    pred = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(gold, pred, labels=list(range(k)),
                                                                     zero_division=0)
    report = {**score(probs, gold, k),
              "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                                   "f1": float(f1[i]), "support": int(support[i])} for i, name in enumerate(labels)},
              "confusion": confusion_matrix(gold, pred, labels=list(range(k))).tolist(),
              "ece": expected_calibration_error(probs, gold)}
    if ordinal:
        report["off_by_one_accuracy"] = float((np.abs(pred - gold) <= 1).mean())
    return report


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Share of texts on which two models pick the same label."""
    return float((probs_a.argmax(axis=1) == probs_b.argmax(axis=1)).mean())


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def readable(key: str, value):
    """A number the way people read it: parameters as 22.7M, speed-ups as 9.6x, samples/s to one decimal."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if "parameters" in key:
        return f"{value / 1e6:.1f}M"
    if "speedup" in key:
        return f"{value:.1f}x"
    if "samples_per_s" in key:
        return f"{value:,.1f}"
    return value


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
