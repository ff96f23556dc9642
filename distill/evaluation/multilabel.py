"""Multi-label scores: a text belongs to any number of labels, predictions are label sets.

Everything works on [N, K] arrays: probabilities, or 0/1 indicators of the sets. scikit-learn computes
the F1s, precision/recall, subset accuracy, Hamming loss and average precision (its `average_precision_score`
is the threshold-free mAP); what it lacks (label cardinality, set rules, indicator helpers) is here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
)

from ..errors import DistillError


def indicators(sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """[N, K] 0/1 of label-name sets (unknown names are an error naming the first)."""
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(sets), len(labels)), dtype=np.int64)
    for row, names in enumerate(sets):
        for name in names:
            if name not in index:
                raise DistillError(f"label '{name}' (row {row + 1}) is not one of data.labels {list(labels)}")
            out[row, index[name]] = 1
    return out


def names_of(rows: np.ndarray, labels: Sequence[str]) -> list[list[str]]:
    """[N, K] 0/1 -> the label names of each row, in label order."""
    return [[labels[k] for k in np.flatnonzero(row)] for row in np.asarray(rows)]


def threshold(probs: np.ndarray, thresholds) -> np.ndarray:
    """[N, K] 0/1: a label is in a text's set when its probability reaches its threshold (one number, or one a
    label); a text no label reaches gets its most probable one (every text has at least one label)."""
    probs = np.asarray(probs, dtype=np.float64)
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (probs.shape[1],))
    sets = (probs >= t).astype(np.int64)
    empty = sets.sum(1) == 0
    sets[np.flatnonzero(empty), probs[empty].argmax(1)] = 1
    return sets


def relative_sets(probs: np.ndarray, ratio: float) -> np.ndarray:
    """[N, K] 0/1: the labels whose probability is at least `ratio` times the text's top one (the top label is
    always in)."""
    if not 0 < ratio <= 1:
        raise DistillError(f"a relative label-set rule needs a ratio in (0, 1], got {ratio}")
    probs = np.asarray(probs, dtype=np.float64)
    return (probs >= ratio * probs.max(1, keepdims=True)).astype(np.int64)


def rule_sets(probs: np.ndarray, rule: str) -> np.ndarray:
    """[N, K] 0/1 of a teacher's label sets by `teacher.label_sets`: `relative:R` (labels at least R times the
    top one), `threshold:T` (at least T; the top one when none is) or `top:K` (the K most probable)."""
    kind, _, value = str(rule).partition(":")
    try:
        number = float(value)
    except ValueError:
        number = None
    if kind == "relative" and number is not None and 0 < number <= 1:
        return relative_sets(probs, number)
    if kind == "threshold" and number is not None and 0 < number <= 1:
        return threshold(probs, number)
    if kind == "top" and number is not None and number >= 1 and number == int(number):
        probs = np.asarray(probs)
        sets = np.zeros(probs.shape, dtype=np.int64)
        np.put_along_axis(sets, np.argsort(-probs, axis=1)[:, :int(number)], 1, axis=1)
        return sets
    raise DistillError(f"teacher.label_sets='{rule}': use relative:R (0 < R <= 1), threshold:T (0 < T <= 1) or top:K")


def cardinality(sets: np.ndarray) -> float:
    """Mean number of labels a text."""
    return float(np.asarray(sets).sum(1).mean())


def report(probs: np.ndarray, pred: np.ndarray, gold: np.ndarray, labels: Sequence[str]) -> dict:
    """Scores of predicted sets `pred` [N, K] (and the probabilities behind them, for mAP) against gold sets."""
    k = len(labels)
    precision, recall, f1, support = precision_recall_fscore_support(gold, pred, average=None, zero_division=0,
                                                                     labels=list(range(k)))
    present = gold.sum(0) > 0  # mAP over the labels that occur (average precision is undefined for the others)
    return {
        "micro_f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(gold, pred)),
        "hamming_loss": float(hamming_loss(gold, pred)),
        "map": float(average_precision_score(gold[:, present], probs[:, present], average="macro"))
        if present.any() else None,
        "cardinality": cardinality(pred), "gold_cardinality": cardinality(gold),
        # "accuracy" for the tables and plots that sort by it: the micro-F1 is what multi-label work reports
        "accuracy": float(f1_score(gold, pred, average="micro", zero_division=0)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(labels)},
    }


def set_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """How closely two models' label sets match: the micro-F1 of one against the other (symmetric)."""
    return float(f1_score(b, a, average="micro", zero_division=0))
