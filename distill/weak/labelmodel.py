"""Label models: combine many noisy sources' votes into one probability per label, without gold.

Pure numpy. Every function takes the votes of S sources on N texts as one array `votes[N, S, K]`: a
row is a distribution over the K labels (a one-hot for a labelling function's vote or a teacher's
argmax, the probabilities for a teacher's soft vote) or all zeros where the source abstains.

- `majority_vote`: weighted count of hard votes.
- `average`: weighted mean of the (soft) votes of the sources that did not abstain.
- `DawidSkene`: EM over a confusion matrix per source and a class prior (Dawid & Skene 1979), which
  learns how far to trust each source from how it agrees with the others; abstaining is one more
  outcome of a source, so a keyword that fires mostly on one class counts as evidence for it.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-12


def one_hot(ids: np.ndarray, n_labels: int) -> np.ndarray:
    """[N] or [N, S] label ids (-1 = abstain) -> [N, (S,) K] one-hot votes, zeros where abstaining."""
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (n_labels,), dtype=np.float64)
    np.put_along_axis(out, np.clip(ids, 0, None)[..., None], 1.0, axis=-1)
    out[ids < 0] = 0.0
    return out


def harden(votes: np.ndarray) -> np.ndarray:
    """Soft votes -> one-hot of their argmax; abstains stay zero."""
    ids = np.where(votes.sum(-1) > 0, votes.argmax(-1), -1)
    return one_hot(ids, votes.shape[-1])


def abstains(votes: np.ndarray) -> np.ndarray:
    """[N, S] bool: where a source gave no vote."""
    return votes.sum(-1) <= 0


def _weights(weights, n_sources: int) -> np.ndarray:
    w = np.ones(n_sources) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n_sources,) or (w < 0).any():
        raise ValueError(f"weights must be {n_sources} non-negative numbers, got {weights}")
    return w


def _normalise(scores: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    total = scores.sum(-1, keepdims=True)
    return np.where(total > 0, scores / np.maximum(total, EPS), fallback)


def majority_vote(votes: np.ndarray, weights=None, prior=None) -> np.ndarray:
    """[N, K]: share of the (weighted) hard votes each label got; ties share the mass evenly.

    A text no source voted on gets `prior` (default uniform)."""
    n, s, k = votes.shape
    counts = np.einsum("nsk,s->nk", harden(votes), _weights(weights, s))
    top = counts.max(-1, keepdims=True)
    winners = ((counts == top) & (top > 0)).astype(np.float64)
    fallback = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
    return _normalise(winners, fallback)


def average(votes: np.ndarray, weights=None, prior=None) -> np.ndarray:
    """[N, K]: weighted mean of the soft votes of the sources that voted (probability averaging)."""
    n, s, k = votes.shape
    fallback = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
    return _normalise(np.einsum("nsk,s->nk", votes, _weights(weights, s)), fallback)


class DawidSkene:
    """Dawid-Skene EM: a confusion matrix per source, P(vote | true label), and a class prior.

    The outcomes of a source are its K labels plus "abstain". Soft votes count fractionally (the
    expected confusion counts), so a teacher's probabilities can be used as they are. `smoothing`
    adds that many pseudo-counts to every confusion cell (keeps rare outcomes off zero), and
    `prior_smoothing` to every class of the prior. The prior is re-estimated by EM (`prior_from="em"`),
    or taken once from the sources' majority vote and held (`"vote"`), or fixed by `class_prior` (e.g.
    uniform, or known class shares). An EM prior can drift far from the truth when the votes are weak
    (snorkel#1432-like: a skewed learned balance hurts the end model), which the other two avoid. `weights` temper each source's
    log-likelihood (0.5 for each of two sources known to copy each other: together they count once).
    `one_coin=True` ties each source's confusion to one number, its accuracy (errors spread evenly over the
    other labels; Dawid-Skene's "one-coin" model): K*(K+1) parameters a source become one, which a few hundred
    texts can estimate over tens of labels, where the full matrices are mostly their smoothing.
    """

    def __init__(self, n_labels: int, smoothing: float = 1.0, class_prior=None, prior_smoothing: float = 1.0,
                 weights=None, max_iter: int = 200, tol: float = 1e-6, prior_from: str = "em",
                 one_coin: bool = False):
        self.n_labels = n_labels
        self.one_coin = one_coin
        self.smoothing = float(smoothing)
        self.prior_smoothing = float(prior_smoothing)
        self.fixed_prior = None if class_prior is None else self._check_prior(class_prior, n_labels)
        self.weights = weights
        self.max_iter = max_iter
        self.tol = tol
        if prior_from not in ("em", "vote"):
            raise ValueError(f"prior_from must be em or vote, got {prior_from}")
        self.prior_from = prior_from

    @staticmethod
    def _check_prior(prior, k: int) -> np.ndarray:
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != (k,) or (prior <= 0).any():
            raise ValueError(f"class_prior must be {k} positive numbers, got {prior.tolist()}")
        return prior / prior.sum()

    def _outcomes(self, votes: np.ndarray) -> np.ndarray:
        """[N, S, K+1]: the votes plus the abstain mass as a last outcome."""
        if votes.ndim != 3 or votes.shape[-1] != self.n_labels:
            raise ValueError(f"votes must be [N, S, {self.n_labels}], got {votes.shape}")
        rest = np.clip(1.0 - votes.sum(-1, keepdims=True), 0.0, 1.0)
        return np.concatenate([votes, rest], axis=-1)

    def _log_posterior(self, outcomes: np.ndarray) -> np.ndarray:
        w = _weights(self.weights, outcomes.shape[1])
        with np.errstate(divide="ignore"):  # one_coin: a source that never abstains has abstain probability 0
            log_confusion = np.log(self.confusion_)
        # A source that never abstained while fitting (a teacher) says nothing by abstaining.
        log_confusion[~self.abstains_, :, -1] = 0.0
        evidence = np.einsum("nsj,skj,s->nk", outcomes, log_confusion, w)
        return np.log(self.prior_) + evidence

    def fit(self, votes: np.ndarray, init: np.ndarray | None = None, known: np.ndarray | None = None) -> "DawidSkene":
        """Estimate the confusions and the prior from the votes; `init` [N, K]: starting posteriors; `known` [N]:
        a text's true label where a person gave it (-1 elsewhere), held fixed through EM, so the sources'
        confusions are anchored on real answers and not only on how the sources agree."""
        votes = np.asarray(votes, dtype=np.float64)
        known = np.full(len(votes), -1) if known is None else np.asarray(known)
        # Texts no source voted on are left out of the fit (unless a person labelled them): nothing in them
        # says which class they are, and EM would otherwise make "everyone abstained" the mark of whichever
        # class took them first.
        voted = (votes.sum((1, 2)) > 0) | (known >= 0)
        votes, known = votes[voted], known[voted]
        clamp = known >= 0
        outcomes = self._outcomes(votes)
        self.abstains_ = outcomes[:, :, -1].sum(0) > 0
        # Start from the soft majority: it fixes which latent class is which label (no label switching).
        posterior = average(votes, self.weights) if init is None else np.asarray(init, dtype=np.float64)[voted]
        posterior[clamp] = one_hot(known[clamp], self.n_labels)
        prior = self.fixed_prior
        if prior is None and self.prior_from == "vote":
            # The class shares of the (soft) majority, held fixed: EM cannot then trade the class balance for
            # a degenerate fit (e.g. one class shrunk to the texts a single keyword fires on).
            prior = self._check_prior(posterior.sum(0) + self.prior_smoothing, self.n_labels)
        self.log_likelihood_, self.n_iter_ = -np.inf, 0
        for self.n_iter_ in range(1, self.max_iter + 1):
            # M-step: expected counts of (true label k, source outcome j), then the prior.
            counts = np.einsum("nk,nsj->skj", posterior, outcomes)
            if self.one_coin:
                self.confusion_ = self._one_coin(counts)
            else:
                counts = counts + self.smoothing
                self.confusion_ = counts / counts.sum(-1, keepdims=True)
            if prior is None:
                shares = posterior.sum(0) + self.prior_smoothing
                self.prior_ = shares / shares.sum()
            else:
                self.prior_ = prior
            # E-step: posterior over the true label of every text.
            log_post = self._log_posterior(outcomes)
            top = log_post.max(-1, keepdims=True)
            likelihood = float((top[:, 0] + np.log(np.exp(log_post - top).sum(-1))).sum())
            posterior = np.exp(log_post - top)
            posterior /= posterior.sum(-1, keepdims=True)
            posterior[clamp] = one_hot(known[clamp], self.n_labels)
            if abs(likelihood - self.log_likelihood_) <= self.tol * max(1.0, abs(likelihood)):
                self.log_likelihood_ = likelihood
                break
            self.log_likelihood_ = likelihood
        self.n_sources_ = outcomes.shape[1]
        return self

    def _one_coin(self, counts: np.ndarray) -> np.ndarray:
        """[S, K, K+1] confusions from expected counts, each source's label part one accuracy: right with
        probability a, each other label (1 - a) / (K - 1); the abstain rate stays per true label."""
        k, s = self.n_labels, self.smoothing
        votes = counts[:, :, :k]
        accuracy = (np.einsum("skk->s", votes) + s) / (votes.sum((1, 2)) + 2 * s)
        label_part = np.repeat(((1.0 - accuracy) / (k - 1))[:, None, None], k, 1).repeat(k, 2)
        label_part[:, np.arange(k), np.arange(k)] = accuracy[:, None]
        abstain = np.where(self.abstains_[:, None], (counts[:, :, k] + s) / (counts.sum(-1) + 2 * s), 0.0)
        return np.concatenate([label_part * (1.0 - abstain)[..., None], abstain[..., None]], axis=-1)

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        """[N, K] posterior over the true label, for these or new texts' votes."""
        log_post = self._log_posterior(self._outcomes(np.asarray(votes, dtype=np.float64)))
        post = np.exp(log_post - log_post.max(-1, keepdims=True))
        return post / post.sum(-1, keepdims=True)

    def accuracies(self) -> np.ndarray:
        """[S] estimated accuracy of each source where it votes: P(vote = truth | it did not abstain)."""
        votes = self.confusion_[:, :, :-1]  # [S, K, K] without the abstain outcome
        correct = np.einsum("k,skk->s", self.prior_, votes)
        voted = np.einsum("k,skj->s", self.prior_, votes)
        return correct / np.maximum(voted, EPS)

    def coverages(self) -> np.ndarray:
        """[S] estimated share of texts each source votes on (of those any source voted on)."""
        return np.where(self.abstains_, 1.0 - self.prior_ @ self.confusion_[:, :, -1].T, 1.0)


LABEL_MODELS = ("majority_vote", "average", "dawid_skene")
