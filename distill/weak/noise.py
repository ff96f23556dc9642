"""Likely wrong labels, confident-learning style (Northcutt et al. 2021), and the training weight they get.

Out-of-sample probabilities come from k-fold logistic regression on cheap features (a TF-IDF of the
text and/or the sources' votes), trained on the label model's labels. Class j's threshold t_j is the
mean out-of-sample probability of j over the texts labelled j. A text is flagged when the classes it
is confidently in (p_j >= t_j) do not include its label and the most probable of them is another
class: the off-diagonal of the confident joint.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_MODES = ("off", "flag", "drop", "downweight")
FEATURES = ("tfidf", "sources")


@dataclass
class NoiseReport:
    flags: np.ndarray  # [N] bool: the label looks wrong
    suggested: np.ndarray  # [N] the confident class of a flagged text (its own label otherwise)
    thresholds: np.ndarray  # [K] per-class thresholds
    probs: np.ndarray  # [N, K] out-of-sample probabilities


def features(texts: list[str], votes: np.ndarray, kinds) -> "object":
    """Sparse [N, F] features: TF-IDF of word 1-2-grams and/or the flattened votes [N, S*K]."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    kinds = list(kinds)
    unknown = sorted(set(kinds) - set(FEATURES))
    if unknown or not kinds:
        raise ValueError(f"noise features must be some of {FEATURES}, got {kinds}")
    blocks = []
    if "tfidf" in kinds:
        blocks.append(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50_000)
                      .fit_transform(texts))
    if "sources" in kinds:
        blocks.append(sparse.csr_matrix(votes.reshape(len(votes), -1)))
    return sparse.hstack(blocks).tocsr()


def out_of_sample_probs(x, labels: np.ndarray, n_labels: int, folds: int = 5, seed: int = 0,
                        c: float = 1.0) -> np.ndarray:
    """[N, K] probabilities of each text from a logistic regression that did not see it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(labels, minlength=n_labels)
    stratify = counts[counts > 0].min() >= folds
    split = (StratifiedKFold if stratify else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    probs = np.zeros((len(labels), n_labels))
    for train, test in split.split(x, labels):
        present = np.unique(labels[train])
        if len(present) == 1:  # a fold with one class: that class is all the model can say
            probs[test, present[0]] = 1.0
            continue
        model = LogisticRegression(C=c, max_iter=1000).fit(x[train], labels[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return probs


def confident_flags(probs: np.ndarray, labels: np.ndarray) -> NoiseReport:
    """Flag the texts whose confident class is not their label (see the module docstring)."""
    n, k = probs.shape
    thresholds = np.array([probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])
    confident = probs >= thresholds
    # The most probable class among the confident ones; a text confident in no class is not judged.
    masked = np.where(confident, probs, -1.0)
    best = masked.argmax(1)
    judged = confident.any(1)
    flags = judged & (best != labels) & ~confident[np.arange(n), labels]
    return NoiseReport(flags=flags, suggested=np.where(flags, best, labels), thresholds=thresholds, probs=probs)


def weights(report: NoiseReport, labels: np.ndarray, mode: str) -> np.ndarray:
    """[N] training weight in [0, 1]: 1 for a label that looks right; a flagged one gets 0 (drop), or
    its out-of-sample probability over its class threshold (downweight: the further below, the less)."""
    if mode not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode}")
    w = np.ones(len(labels))
    if mode == "drop":
        w[report.flags] = 0.0
    elif mode == "downweight":
        own = report.probs[np.arange(len(labels)), labels] / np.maximum(report.thresholds[labels], 1e-12)
        w[report.flags] = np.clip(own[report.flags], 0.0, 1.0)
    return w
