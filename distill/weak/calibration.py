"""Temperature scaling of a teacher's probabilities, fitted without gold.

A teacher's scores are softmax(logits); scaled, they are softmax(log p / T). T > 1 softens an
over-confident teacher, T < 1 sharpens an under-confident one (the embedding teachers' cosines are
close together). T is the one number that maximises the likelihood of target labels: here the
consensus of the *other* sources, so a teacher is not calibrated against its own opinion.
T is searched in [0.05, 20]: an embedding teacher's softmax(cosine / 0.05) can need either end.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-12
LOG_T_RANGE = (np.log(0.05), np.log(20.0))


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row by row."""
    logits = np.log(np.clip(probs, EPS, None)) / temperature
    logits -= logits.max(-1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(-1, keepdims=True)


def nll(probs: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean cross-entropy of the scaled probabilities against targets ([N, K] distributions)."""
    return float(-(targets * np.log(np.clip(scale(probs, temperature), EPS, None))).sum(-1).mean())


def fit_temperature(probs: np.ndarray, targets: np.ndarray, tol: float = 1e-4) -> float:
    """The T in [0.05, 20] that minimises `nll`; `targets` are [N, K] distributions or [N] label ids.

    The NLL is unimodal in log T for a softmax (it is convex in 1/T), so a golden-section search suffices.
    """
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets)
    if targets.ndim == 1:
        targets = np.eye(probs.shape[1])[targets]
    if len(probs) == 0:
        return 1.0
    lo, hi = LOG_T_RANGE
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(probs, targets, np.exp(a)), nll(probs, targets, np.exp(b))
    while hi - lo > tol:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(probs, targets, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(probs, targets, np.exp(b))
    return float(np.exp((lo + hi) / 2))
