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


def gold_sets(gold: Sequence, labels: Sequence[str], multi_label_data: bool) -> np.ndarray:
    """[N, K] 0/1 of held-out gold: label sets on multi-label data, one label a text otherwise (a teacher asked to
    score each label on its own, on single-label data)."""
    return indicators([g if multi_label_data else [g] for g in gold], labels)


def names_of(rows: np.ndarray, labels: Sequence[str]) -> list[list[str]]:
    """[N, K] 0/1 -> the label names of each row, in label order."""
    return [[labels[k] for k in np.flatnonzero(row)] for row in np.asarray(rows)]


def threshold(probs: np.ndarray, thresholds, none: int | None = None) -> np.ndarray:
    """[N, K] 0/1: a label is in a text's set when its probability reaches its threshold (one number, or one a
    label); a text no label reaches gets its most probable one (every text has at least one label), or the
    `none` label (data.none_label's index) when there is one."""
    probs = np.asarray(probs, dtype=np.float64)
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (probs.shape[1],))
    sets = (probs >= t).astype(np.int64)
    return _settle_none(sets, none) if none is not None else _at_least_one(sets, probs)


def _at_least_one(sets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    empty = sets.sum(1) == 0
    sets[np.flatnonzero(empty), scores[empty].argmax(1)] = 1
    return sets


def _settle_none(sets: np.ndarray, none: int) -> np.ndarray:
    """The "none of these" label is in a text's set exactly when no other label is (its own score is not used)."""
    sets[:, none] = 0
    sets[:, none] = sets.sum(1) == 0
    return sets


def relative_sets(probs: np.ndarray, ratio: float) -> np.ndarray:
    """[N, K] 0/1: the labels whose probability is at least `ratio` times the text's top one (the top label is
    always in)."""
    if not 0 < ratio <= 1:
        raise DistillError(f"a relative label-set rule needs a ratio in (0, 1], got {ratio}")
    probs = np.asarray(probs, dtype=np.float64)
    return (probs >= ratio * probs.max(1, keepdims=True)).astype(np.int64)


def rate_sets(probs: np.ndarray, rate: float) -> np.ndarray:
    """[N, K] 0/1 from each label's own score distribution over these texts: a label is in the sets of the
    `rate` share of texts it scores highest on (ties kept together). Teachers score some labels high on every
    text and others low on every text (the NLI model says yes to 18 of GoEmotions' 28 a text); ranking each
    label against itself, not against the other labels, takes that bias out. Needs the texts together, so it
    is for a labelled file (the pool, the held-out texts), not one text at a time."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return np.zeros(probs.shape, dtype=np.int64)
    cut = _rate_cut(probs, rate)
    # a label scored alike on most texts (cut at its lowest score) is on only above that score, never everywhere
    return ((probs >= cut) & ((probs > probs.min(axis=0)) | (cut > probs.min(axis=0)))).astype(np.int64)


def _rate_cut(probs: np.ndarray, rate: float) -> np.ndarray:
    """[K]: each label's score at the `rate` share of texts (its round(rate x N)-th highest, at least the top)."""
    take = max(1, int(round(rate * len(probs))))
    return -np.sort(-probs, axis=0)[take - 1]


def _number(value: str):
    try:
        return float(value)
    except ValueError:
        return None


def rule_sets(probs: np.ndarray, rule: str, none: int | None = None) -> np.ndarray:
    """[N, K] 0/1 of a teacher's label sets by `teacher.label_sets`: `relative:R` (labels at least R times the
    top one), `threshold:T` (at least T; the top one when none is), `top:K` (the K most probable) or `rate:R`
    (each label in the sets of the R share of texts it scores highest on; `rate:auto` is 1/K for K labels).
    With a `none` label (data.none_label's index) the none label is a text's set exactly when no other label is:
    `threshold` and `rate` run over the other labels and give it the texts none of them reached; `relative` and
    `top`, which always pick some label, let its own score take part, and a text whose top label it is gets it
    alone (elsewhere it is left out)."""
    kind, _, value = str(rule).partition(":")
    number = _number(value)
    probs = np.asarray(probs, dtype=np.float64)
    scores = probs.copy()
    if none is not None and kind in ("threshold", "rate"):
        scores[:, none] = -np.inf  # the none label's own score takes no part: it fills what the others leave
    if kind == "relative" and number is not None and 0 < number <= 1:
        sets = relative_sets(scores, number)
    elif kind == "threshold" and number is not None and 0 < number <= 1:
        sets = (scores >= number).astype(np.int64)
        if none is None:
            sets = _at_least_one(sets, scores)
    elif kind == "top" and number is not None and number >= 1 and number == int(number):
        sets = np.zeros(probs.shape, dtype=np.int64)
        np.put_along_axis(sets, np.argsort(-scores, axis=1)[:, :int(number)], 1, axis=1)
    elif kind == "rate" and (value == "auto" or (number is not None and 0 < number < 1)):
        rate = 1 / probs.shape[1] if value == "auto" else number
        sets = rate_sets(scores, rate)
        if none is None and len(scores):  # every text keeps a label: the one whose cut it comes nearest to,
            # in that label's own spread (a label scored alike on every text never wins)
            spread = scores.std(axis=0)
            near = np.where(spread > 0, (scores - _rate_cut(scores, rate)) / np.where(spread > 0, spread, 1), -np.inf)
            sets = _at_least_one(sets, near)
    else:
        raise DistillError(f"teacher.label_sets='{rule}': use relative:R (0 < R <= 1), threshold:T (0 < T <= 1), "
                           f"top:K or rate:R (0 < R < 1, or rate:auto)")
    if none is not None and kind in ("relative", "top"):
        alone = scores.argmax(1) == none  # the none label is the text's top one: it alone
        sets[alone] = 0
        sets[alone, none] = 1
        sets[~alone, none] = 0
        return sets
    return _settle_none(sets, none) if none is not None else sets


def set_confusion(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The multi-label confusion view [K, K]: row i, the texts whose gold set holds label i; column j, how many of
    them have label j in the predicted set. The diagonal is each label's hits, a row's other cells what the model
    gave those texts besides or instead (a row may add up to more than its texts: sets have several labels)."""
    return np.asarray(gold, dtype=np.int64).T @ np.asarray(pred, dtype=np.int64)


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
        "set_confusion": set_confusion(gold, pred).tolist(),
        # "accuracy" for the tables and plots that sort by it: the micro-F1 is what multi-label work reports
        "accuracy": float(f1_score(gold, pred, average="micro", zero_division=0)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(labels)},
    }


def set_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """How closely two models' label sets match: the micro-F1 of one against the other (symmetric)."""
    return float(f1_score(b, a, average="micro", zero_division=0))
