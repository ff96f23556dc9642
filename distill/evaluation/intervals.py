"""How far a score measured on n texts can be trusted: 95% intervals and a paired comparison.

- accuracy (a proportion): the Wilson score interval, from scipy's `binomtest(...).proportion_ci`
  (right near 0 and 1 and on small n, where the normal interval is not);
- macro-F1 (no closed form): a seeded percentile bootstrap over the texts;
- student against teacher on the same texts: McNemar's exact test on the texts exactly one of them gets
  right (scipy's `binomtest` on the discordant pairs), with the normal interval of the paired difference
  (b - c) / n, se = sqrt(b + c - (b - c)^2 / n) / n (Agresti, Categorical Data Analysis, 10.1).
"""
from __future__ import annotations

import numpy as np

LEVEL = 0.95
Z95 = 1.959963984540054
BOOTSTRAP = 1000


def wilson(correct: int, n: int, level: float = LEVEL) -> tuple[float, float] | None:
    """The Wilson score interval of `correct` successes in `n` trials; None when n is 0."""
    if n <= 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_interval(pred: np.ndarray, gold: np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    return wilson(int((np.asarray(pred) == np.asarray(gold)).sum()), len(gold), level)


def macro_f1_interval(pred: np.ndarray, gold: np.ndarray, n_labels: int, level: float = LEVEL,
                      resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of macro-F1 (every label counted), resampling texts with replacement."""
    from sklearn.metrics import f1_score

    pred, gold = np.asarray(pred), np.asarray(gold)
    n = len(gold)
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    labels = list(range(n_labels))
    scores = np.empty(resamples)
    for i in range(resamples):
        take = rng.integers(0, n, n)
        scores[i] = f1_score(gold[take], pred[take], average="macro", labels=labels, zero_division=0)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(scores, tail)), float(np.percentile(scores, 100 - tail))


def paired_comparison(pred_a: np.ndarray, pred_b: np.ndarray, gold: np.ndarray) -> dict | None:
    """Model a against model b on the same texts: accuracy difference a - b with its 95% interval, and
    McNemar's exact two-sided p-value (b and c: texts only a, only b gets right)."""
    gold = np.asarray(gold)
    n = len(gold)
    if n == 0:
        return None
    right_a, right_b = np.asarray(pred_a) == gold, np.asarray(pred_b) == gold
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    diff = (only_a - only_b) / n
    se = np.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    if only_a + only_b:
        from scipy.stats import binomtest

        p = float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    else:
        p = 1.0
    return {"difference": float(diff), "ci": [float(diff - Z95 * se), float(diff + Z95 * se)], "p_value": p,
            "only_a_right": only_a, "only_b_right": only_b, "n": n}


def describe_difference(comparison: dict | None, a: str = "student", b: str = "teacher") -> str:
    """`student - teacher: +1.0 pt (95% CI -0.4 to +2.4), p = 0.18` on n texts."""
    if not comparison:
        return "-"
    low, high = comparison["ci"]
    p = comparison["p_value"]
    shown = f"p = {p:.2g}" if p >= 0.001 else "p < 0.001"
    return (f"{a} - {b}: {100 * comparison['difference']:+.1f} pt (95% CI {100 * low:+.1f} to {100 * high:+.1f}), "
            f"{shown}")


def with_interval(value: float | None, interval) -> str:
    """0.8245 [0.798, 0.849]"""
    if value is None:
        return "-"
    if not interval:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.3f}, {interval[1]:.3f}]"
