"""What the student learns from: the teacher's labels, filtered, weighted and split, never gold.

`prepare` turns the label file's texts and [N, K] probabilities (plus an optional per-row `weight`
column, e.g. from a noise filter) into a training set and a teacher-labelled validation split:

- `train.min_confidence`: texts whose top teacher probability is below it are dropped;
- `train.confidence_weighting`: each text weighs its teacher confidence (low-confidence labels count less);
- `train.class_balance`: each text weighs 1 / (its teacher class's share x K), so rare classes count as
  much as common ones;
- `train.label_balance` (multi-label): each label's positives weigh (texts without it) / (texts with it) in its
  binary cross-entropy (`pos_weight`), so a label the teacher gives 3% of texts is not learned as "never";
- `train.val_fraction`: a seeded share of the kept texts is set aside, teacher-labelled, for model
  selection and early stopping.

Weights are normalised to mean 1 over the training split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import DistillError


@dataclass
class LabelledTexts:
    texts: list[str]
    probs: np.ndarray  # [N, K] teacher probabilities
    weights: Optional[np.ndarray] = None  # [N] per-text loss weights; None: all 1
    sets: Optional[np.ndarray] = None  # multi-label: [N, K] 0/1, the teacher's label sets; None: single-label
    pos_weight: Optional[np.ndarray] = None  # multi-label, train.label_balance: [K] weight of each label's positives
    none_label: Optional[str] = None  # multi-label: data.none_label, saved with the student's thresholds

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: np.ndarray) -> "LabelledTexts":
        return LabelledTexts([self.texts[i] for i in idx], self.probs[idx],
                             None if self.weights is None else self.weights[idx],
                             None if self.sets is None else self.sets[idx], self.pos_weight, self.none_label)


HOLDOUT_MAX = 2000  # texts a gold-free evaluation needs at most (a 95% interval of about +-2 points)


def holdout_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """The rows of an n-text label file kept out of training for evaluation against the teacher (seeded,
    sorted; at most HOLDOUT_MAX). Train leaves them out, eval scores them: both call this."""
    if not fraction:
        return np.arange(0)
    if not 0 < fraction < 1:
        raise DistillError(f"train.holdout must be in [0, 1) (or null), got {fraction}")
    size = min(HOLDOUT_MAX, max(1, int(round(fraction * n))))
    if size >= n:
        raise DistillError(f"train.holdout={fraction} of {n} texts leaves none to train on; set train.holdout=0")
    return np.sort(np.random.default_rng([seed, 11]).choice(n, size=size, replace=False))


def check_inputs(texts, probs, labels) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float32)
    if len(texts) == 0:
        raise DistillError("train: there are no texts to train on")
    if probs.shape != (len(texts), len(labels)):
        raise DistillError(f"train: teacher probabilities have shape {probs.shape}, expected "
                           f"({len(texts)}, {len(labels)}) for {len(texts)} texts and {len(labels)} labels; "
                           "re-run stage=label")
    return probs


def _check_options(train) -> None:
    if not 0 <= train.min_confidence < 1:
        raise DistillError(f"train.min_confidence must be in [0, 1), got {train.min_confidence}")
    if not 0 <= train.val_fraction < 1:
        raise DistillError(f"train.val_fraction must be in [0, 1), got {train.val_fraction}")
    if getattr(train, "max_minutes", None) is not None and train.max_minutes <= 0:
        raise DistillError(f"train.max_minutes must be above 0 (or null: no limit), got {train.max_minutes}")


POS_WEIGHT_MAX = 100.0  # a label given to fewer than 1% of the texts weighs no more than one given to 1%


def positive_weights(targets: np.ndarray) -> np.ndarray:
    """Multi-label label balance: each label's positives weigh (1 - share) / share, its share being the mean of
    its targets (0/1 sets or probabilities), clipped to [1, POS_WEIGHT_MAX]: positives and negatives of every
    label then count alike in its binary cross-entropy. A label never given keeps 1."""
    share = np.asarray(targets, dtype=np.float64).mean(axis=0)
    weight = np.where(share > 0, (1 - share) / np.maximum(share, 1e-12), 1.0)
    return np.clip(weight, 1.0, POS_WEIGHT_MAX).astype(np.float32)


def prepare(texts, probs, labels, train, weights: Optional[np.ndarray] = None, sets: Optional[np.ndarray] = None
            ) -> tuple[LabelledTexts, Optional[LabelledTexts], dict]:
    """(training split, validation split or None, stats of what was kept and how it was weighted). `sets`
    (multi-label): the teacher's label sets [N, K], split with the texts."""
    _check_options(train)
    probs = check_inputs(texts, probs, labels)
    if sets is not None and train.class_balance:
        raise DistillError("train.class_balance weighs each text by its one class: not for multi-label data, where "
                           "train.label_balance (on by default) weighs each label's positives instead")
    n, k = probs.shape
    w = np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any():
        raise DistillError("train: the label file's `weight` column must hold one finite, non-negative number a text")
    confidence = probs.max(axis=1)
    zero_weight = ~(w > 0)
    keep = (confidence >= train.min_confidence) & ~zero_weight
    if not keep.any():
        raise DistillError(f"train.min_confidence={train.min_confidence} (and any zero weights) leaves no text "
                           f"to train on: the teacher's most confident label has p={confidence.max():.3f}")
    if train.confidence_weighting:
        w = w * confidence
    classes = probs.argmax(axis=1)
    if train.class_balance:
        counts = np.bincount(classes[keep], minlength=k).astype(np.float64)
        share = counts / counts.sum()
        factor = np.where(share > 0, 1.0 / (np.maximum(share, 1e-12) * np.count_nonzero(counts)), 0.0)
        w = w * factor[classes]
    kept = np.flatnonzero(keep)
    rng = np.random.default_rng([train.seed, 7])
    n_val = int(round(train.val_fraction * len(kept)))
    if train.val_fraction > 0 and (n_val < 1 or n_val >= len(kept)):
        raise DistillError(f"train.val_fraction={train.val_fraction} of {len(kept)} kept texts leaves no "
                           "validation or no training text; set train.val_fraction=0 to train without one")
    shuffled = rng.permutation(kept)
    val_idx, train_idx = np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:])
    data = LabelledTexts(list(texts), probs, w, None if sets is None else np.asarray(sets, dtype=np.int64))
    train_set, val_set = data.take(train_idx), (data.take(val_idx) if n_val else None)
    train_set.weights = train_set.weights / train_set.weights.mean()
    if sets is not None and getattr(train, "label_balance", True):
        train_set.pos_weight = positive_weights(train_set.sets if train.targets == "hard" else train_set.probs)
    if val_set is not None:
        val_set.weights = None  # selection scores every validation text alike
    uniform = np.allclose(train_set.weights, 1.0)
    if uniform:
        train_set.weights = None
    stats = {
        "n_labelled": n, "n_dropped_low_confidence": int((confidence < train.min_confidence).sum()),
        "n_dropped_zero_weight": int((zero_weight & (confidence >= train.min_confidence)).sum()),
        "n_train": len(train_set), "n_val": len(val_set) if val_set is not None else 0,
        "weighted": not uniform,
        "train_class_counts": np.bincount(train_set.probs.argmax(axis=1), minlength=k).tolist(),
    }
    return train_set, val_set, stats
