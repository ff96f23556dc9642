"""Weak supervision's combining step: every source's votes on a split, the label model fitted on the pool
and applied to any split, the noise flags, and the label file's columns (library logic; stage=weak
collects the votes, runs this and writes the results)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from ..errors import DistillError
from ..evaluation.metrics import score
from ..labelstore import SETS_COLUMN, prob_columns
from . import calibration, labelmodel, noise
from .sources import ABSTAIN, Source
from .summary import combine_ids


@dataclass
class SplitVotes:
    """What every source said about one split: teachers' probabilities, LFs' label ids."""

    texts: list[str]
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # teacher -> [N, K]
    ids: dict[str, np.ndarray] = field(default_factory=dict)  # every source -> [N] argmax / vote, ABSTAIN
    paths: dict[str, str] = field(default_factory=dict)  # teacher -> its labels.parquet


def vote_matrix(votes: SplitVotes, sources: list[Source], k: int, temperatures: dict, soft: bool) -> np.ndarray:
    """[N, S, K]: teachers' (calibrated) probabilities or their argmax, LFs' one-hot votes."""
    columns = []
    for source in sources:
        if source.is_teacher and soft:
            columns.append(calibration.scale(votes.probs[source.name], temperatures.get(source.name, 1.0)))
        else:
            columns.append(labelmodel.one_hot(votes.ids[source.name], k))
    return np.stack(columns, axis=1)


class Combiner:
    """The label-model settings of `cfg.weak`, fitted on the pool and applied to any split."""

    def __init__(self, weak: DictConfig, sources: list[Source], labels: list[str]):
        self.weak, self.sources, self.labels, self.k = weak, sources, labels, len(labels)
        unknown = sorted(set(weak.weights) - {s.name for s in sources})
        if unknown:
            raise DistillError(f"weak.weights names unknown source(s) {unknown}; sources: {[s.name for s in sources]}")
        self.weights = np.array([float(weak.weights.get(s.name, 1.0)) for s in sources])
        self.prior = self._prior(weak.class_prior)
        self.temperatures: dict[str, float] = {}

    def _prior(self, given):
        if not given:
            return None
        unknown = sorted(set(given) - set(self.labels))
        if unknown or len(given) != self.k:
            raise DistillError(f"weak.class_prior needs a share for each of {self.labels} (got {dict(given)})")
        return np.array([float(given[label]) for label in self.labels])

    def dawid_skene(self, weights=None) -> labelmodel.DawidSkene:
        return labelmodel.DawidSkene(self.k, smoothing=self.weak.smoothing, class_prior=self.prior,
                                     weights=self.weights if weights is None else weights,
                                     prior_from=self.weak.prior_from)

    def calibrate(self, pool: SplitVotes) -> None:
        """T per teacher: the likelihood of the label the other sources' (weighted) majority gives a text,
        on the texts where they give one. Hard targets: a soft consensus of a few sources is itself
        hesitant, and fitting to it would flatten every teacher."""
        hard = vote_matrix(pool, self.sources, self.k, {}, soft=False)
        for s, source in enumerate(self.sources):
            if not source.is_teacher or len(self.sources) < 2:
                continue
            consensus = labelmodel.majority_vote(np.delete(hard, s, axis=1), np.delete(self.weights, s))
            decided = consensus.max(1) == 1.0  # a unique winner (no tie, at least one vote)
            if decided.sum() < 10:
                continue
            self.temperatures[source.name] = calibration.fit_temperature(pool.probs[source.name][decided],
                                                                         consensus[decided].argmax(1))

    def fit(self, pool: SplitVotes, known: np.ndarray | None = None) -> "Combiner":
        """`known` [N]: the label a person gave a pool text (-1 elsewhere): it anchors Dawid-Skene."""
        if self.weak.calibrate:
            self.calibrate(pool)
        self.models = {soft: self.dawid_skene().fit(self.votes(pool, soft), known=known) for soft in (True, False)}
        return self

    def votes(self, split: SplitVotes, soft: bool | None = None) -> np.ndarray:
        soft = self.weak.teacher_votes == "soft" if soft is None else soft
        return vote_matrix(split, self.sources, self.k, self.temperatures, soft)

    def predict(self, split: SplitVotes) -> dict[str, np.ndarray]:
        """[N, K] probabilities of every label model (the configured one under its plain name)."""
        soft = self.weak.teacher_votes == "soft"
        votes = self.votes(split)
        out = {"majority_vote": labelmodel.majority_vote(votes, self.weights, self.prior),
               # Probability averaging: the teachers' calibrated probabilities whatever teacher_votes says.
               "average": labelmodel.average(self.votes(split, soft=True), self.weights, self.prior),
               "dawid_skene": self.models[soft].predict_proba(votes)}
        other = "hard" if soft else "soft"
        out[f"dawid_skene ({other} teacher votes)"] = self.models[not soft].predict_proba(self.votes(split, not soft))
        return out

    def learned_accuracies(self) -> dict[str, float]:
        model = self.models[self.weak.teacher_votes == "soft"]
        return dict(zip([s.name for s in self.sources], model.accuracies().tolist()))


def check_weak(weak: DictConfig | None) -> DictConfig:
    if weak is None:
        raise DistillError("stage=weak needs a weak preset: e.g. `python -m distill stage=weak weak=sst2` "
                           "(presets live in conf/weak/)")
    if weak.label_model not in labelmodel.LABEL_MODELS:
        raise DistillError(f"weak.label_model={weak.label_model}: must be one of {', '.join(labelmodel.LABEL_MODELS)}")
    if weak.prior_from not in ("vote", "em"):
        raise DistillError(f"weak.prior_from={weak.prior_from}: must be vote or em")
    if weak.teacher_votes not in ("soft", "hard"):
        raise DistillError(f"weak.teacher_votes={weak.teacher_votes}: must be soft or hard")
    if weak.noise not in noise.NOISE_MODES:
        raise DistillError(f"weak.noise={weak.noise}: must be one of {', '.join(noise.NOISE_MODES)}")
    unknown = sorted(set(weak.noise_features) - set(noise.FEATURES))
    if unknown or not weak.noise_features:
        raise DistillError(f"weak.noise_features={list(weak.noise_features)}: use some of {list(noise.FEATURES)}")
    return weak


def find_noise(weak: DictConfig, split: SplitVotes, votes: np.ndarray, probs: np.ndarray):
    """Confident-learning flags, the label suggested for each flagged text (-1 elsewhere) and the weights of
    one split's combined labels (flags and suggestions None when noise=off)."""
    hard = probs.argmax(1)
    evidence = votes.sum((1, 2)) > 0  # a text no source voted on carries no label at all
    w = evidence.astype(np.float64)
    if weak.noise == "off" or len(np.unique(hard[evidence])) < 2 or evidence.sum() < 2 * weak.folds:
        return None, None, w
    x = noise.features(split.texts, votes, weak.noise_features)
    report = noise.confident_flags(noise.out_of_sample_probs(x[evidence], hard[evidence], probs.shape[1],
                                                             weak.folds, weak.seed), hard[evidence])
    w[evidence] = noise.weights(report, hard[evidence], "off" if weak.noise == "flag" else weak.noise)
    flags = np.zeros(len(hard), dtype=bool)
    flags[evidence] = report.flags
    suggested = np.full(len(hard), -1)
    suggested[evidence] = np.where(report.flags, report.suggested, -1)
    return flags, suggested, w


def frame(split: SplitVotes, sources: list[Source], labels: list[str], probs: np.ndarray,
          flags, weights: np.ndarray, suggested: np.ndarray | None = None, sets: list[str] | None = None,
          said: dict[str, list] | None = None) -> pd.DataFrame:
    """The labelstore columns (id, text, prob_*, label, confidence; multi-label: `labels`, each text's set from
    `sets`), then vote.<source> (`said`: what each source said, when not one label id), <teacher>.prob_<label>,
    noisy, noise_suggests (the label the noise filter suggests for a flagged text) and weight."""
    best = probs.argmax(1)
    out = {"id": np.arange(len(split.texts)), "text": split.texts}
    out.update({col: probs[:, k].astype(np.float32) for k, col in enumerate(prob_columns(labels))})
    out["label"] = [labels[i] for i in best]
    out["confidence"] = probs[np.arange(len(best)), best].astype(np.float32)
    if sets is not None:
        out[SETS_COLUMN] = sets
    for source in sources:
        out[f"vote.{source.name}"] = said[source.name] if said is not None else \
            [None if i == ABSTAIN else labels[i] for i in split.ids[source.name]]
        if source.is_teacher:
            for k, col in enumerate(prob_columns(labels)):
                out[f"{source.name}.{col}"] = split.probs[source.name][:, k].astype(np.float32)
    out["noisy"] = flags if flags is not None else np.zeros(len(best), dtype=bool)
    out["noise_suggests"] = [labels[i] if i >= 0 else None for i in suggested] if suggested is not None else \
        [None] * len(best)
    out["weight"] = weights.astype(np.float32)
    return pd.DataFrame(out)


def score_rows(held: SplitVotes, sources: list[Source], predictions: dict, gold: np.ndarray, k: int) -> list[dict]:
    """Held-out gold scores of every source, every kind of LF together, and every label model."""
    def row(name, kind, ids):
        voted = ids != ABSTAIN
        scores = score(np.eye(k)[ids[voted]], gold[voted], k) if voted.any() else {"accuracy": None, "macro_f1": None}
        return {"name": name, "kind": kind, "coverage": float(voted.mean()), **scores,
                "accuracy_all": float((ids == gold).mean())}

    rows = [row(s.name, s.kind, held.ids[s.name]) for s in sources]
    for kind in ("keywords", "regex", "hook"):
        members = [s.name for s in sources if s.kind == kind]
        if len(members) > 1:
            rows.append(row(f"{kind} (combined)", kind, combine_ids(np.stack([held.ids[m] for m in members], 1), k)))
    lfs = [s.name for s in sources if not s.is_teacher]
    if len(lfs) > 1 and len({s.kind for s in sources if not s.is_teacher}) > 1:
        rows.append(row("all LFs (combined)", "lfs", combine_ids(np.stack([held.ids[m] for m in lfs], 1), k)))
    for name, probs in predictions.items():
        rows.append(row(name, "label model", probs.argmax(1)))
    return rows
