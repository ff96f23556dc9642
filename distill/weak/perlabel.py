"""Weak supervision on multi-label data: each label its own binary label model.

On multi-label data a source does not pick one label a text, it says of each label whether it is there:
- a teacher votes its label sets (its `teacher.label_sets`; the run's rule unless its source sets one): on every
  text and every label, "present" or "absent";
- a labelling function votes "present" for the label it names (a keyword list of `joy` fires: joy is there) and
  abstains elsewhere; it says nothing of the other labels (a text may be joyful *and* grateful).

Label k's model is then the binary Dawid-Skene of labelmodel.py over the sources that vote on k: abstaining is
one more outcome of a source, so a keyword that fires mostly on texts the teachers put k on counts as evidence
for k. Its posterior is each label's own probability; `weak.label_sets` (default threshold:0.5, the label model's
own decision) makes the sets, with data.none_label filling the texts no other label reached.
"""
from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from ..errors import DistillError
from ..evaluation import multilabel as ml
from . import labelmodel
from .combine import SplitVotes
from .sources import ABSTAIN, Source

PRESENT, ABSENT = 1, 0


def teacher_rule(source: Source) -> str:
    return str(source.cfg.teacher.label_sets)


def binary_votes(split: SplitVotes, sources: list[Source], n_labels: int, none: int | None) -> np.ndarray:
    """[N, S, K, 2]: every source's vote on every label, one-hot over (absent, present), zeros where it abstains."""
    n = len(split.texts)
    out = np.zeros((n, len(sources), n_labels, 2))
    for s, source in enumerate(sources):
        if source.is_teacher:
            sets = ml.rule_sets(split.probs[source.name], teacher_rule(source), none=none)
            out[:, s] = labelmodel.one_hot(sets, 2)
        else:
            ids = np.asarray(split.ids[source.name])
            rows = np.flatnonzero(ids != ABSTAIN)
            out[rows, s, ids[rows], PRESENT] = 1.0
    return out


def check(weak: DictConfig, sources: list[Source], n_labels: int) -> None:
    """The settings multi-label weak supervision cannot follow, as one-line errors (before any labelling)."""
    if not any(s.is_teacher for s in sources):
        raise DistillError("multi-label weak supervision needs at least one teacher in weak.teachers: a labelling "
                           "function only says where its label is, and a label model needs a source that says where "
                           "each label is not")
    if weak.teacher_votes != "hard":
        raise DistillError(f"weak.teacher_votes={weak.teacher_votes}: on multi-label data each teacher votes its "
                           f"label sets (teacher.label_sets); set weak.teacher_votes=hard")
    if weak.class_prior:
        raise DistillError("weak.class_prior gives one label a text its share: on multi-label data each label's "
                           "rate is estimated from the votes (prior_from); leave weak.class_prior unset")
    unknown = sorted(set(weak.weights) - {s.name for s in sources})
    if unknown:
        raise DistillError(f"weak.weights names unknown source(s) {unknown}; sources: {[s.name for s in sources]}")
    try:
        ml.rule_sets(np.full((1, n_labels), 1.0 / n_labels), str(weak.label_sets))
    except DistillError as e:
        raise DistillError(str(e).replace("teacher.label_sets", "weak.label_sets")) from e


class PerLabel:
    """One binary label model a label, fitted on the pool's votes and applied to any split."""

    def __init__(self, weak: DictConfig, sources: list[Source], labels: list[str], none: int | None):
        check(weak, sources, len(labels))
        self.weak, self.sources, self.labels, self.none = weak, sources, labels, none
        self.weights = np.array([float(weak.weights.get(s.name, 1.0)) for s in sources])

    def votes(self, split: SplitVotes) -> np.ndarray:
        return binary_votes(split, self.sources, len(self.labels), self.none)

    def fit(self, pool: SplitVotes) -> "PerLabel":
        votes = self.votes(pool)
        # label k's sources: every teacher, and the LFs that voted k somewhere in the pool
        self.members = [np.flatnonzero(votes[:, :, k].sum((0, 2)) > 0) for k in range(len(self.labels))]
        self.models = []
        for k, members in enumerate(self.members):
            model = labelmodel.DawidSkene(2, smoothing=self.weak.smoothing, weights=self.weights[members],
                                          prior_from=self.weak.prior_from)
            self.models.append(model.fit(votes[:, members, k]))
        return self

    def predict(self, split: SplitVotes) -> dict[str, np.ndarray]:
        """[N, K] each label's probability under every label model (the configured one under its plain name)."""
        votes = self.votes(split)
        out = {name: np.zeros((len(split.texts), len(self.labels))) for name in labelmodel.LABEL_MODELS}
        for k, (members, model) in enumerate(zip(self.members, self.models)):
            mine, weights = votes[:, members, k], self.weights[members]
            prior = model.prior_
            out["majority_vote"][:, k] = labelmodel.majority_vote(mine, weights, prior)[:, PRESENT]
            out["average"][:, k] = labelmodel.average(mine, weights, prior)[:, PRESENT]
            out["dawid_skene"][:, k] = model.predict_proba(mine)[:, PRESENT]
        return out

    def sets(self, probs: np.ndarray) -> np.ndarray:
        return ml.rule_sets(probs, str(self.weak.label_sets), none=self.none)

    def learned(self) -> dict[str, dict]:
        """Each source's precision and recall where it votes "present", as the label models estimate them without
        gold (the mean over the labels it votes on), and its labels."""
        out = {s.name: {"precision": [], "recall": [], "labels": []} for s in self.sources}
        for k, (members, model) in enumerate(zip(self.members, self.models)):
            confusion, prior = model.confusion_, model.prior_  # [S, 2, 3]: true (absent, present) -> vote outcome
            for j, s in enumerate(members):
                says = prior * confusion[j, :, PRESENT]
                row = out[self.sources[s].name]
                row["precision"].append(says[PRESENT] / max(says.sum(), labelmodel.EPS))
                row["recall"].append(confusion[j, PRESENT, PRESENT])  # P(says present | present), abstains too
                row["labels"].append(self.labels[k])
        return {name: {"precision": float(np.mean(r["precision"])) if r["precision"] else None,
                       "recall": float(np.mean(r["recall"])) if r["recall"] else None, "labels": r["labels"]}
                for name, r in out.items()}


def source_sets(votes: np.ndarray) -> np.ndarray:
    """[N, S, K] 0/1: where each source voted "present"."""
    return (votes[..., PRESENT] > 0).astype(np.int64)


def score_rows(held: SplitVotes, combiner: PerLabel, predictions: dict, gold: np.ndarray) -> list[dict]:
    """Held-out gold scores of every source (its "present" votes as sets) and every label model's sets."""
    said = source_sets(combiner.votes(held))
    rows = []
    for s, source in enumerate(combiner.sources):
        sets = said[:, s]
        voted = sets.sum(1) > 0
        hits = (sets & gold).sum()
        rows.append({"name": source.name, "kind": source.kind, "coverage": float(voted.mean()),
                     "precision": float(hits / sets.sum()) if sets.sum() else None,
                     "micro_f1": ml.set_agreement(sets, gold), "macro_f1": None, "map": None,
                     "cardinality": ml.cardinality(sets)})
        if source.is_teacher:
            report = ml.report(held.probs[source.name], sets, gold, combiner.labels)
            rows[-1].update(macro_f1=report["macro_f1"], map=report["map"])
    for name, probs in predictions.items():
        sets = combiner.sets(probs)
        report = ml.report(probs, sets, gold, combiner.labels)
        rows.append({"name": name, "kind": "label model", "coverage": 1.0,
                     "precision": float((sets & gold).sum() / max(sets.sum(), 1)), "micro_f1": report["micro_f1"],
                     "macro_f1": report["macro_f1"], "map": report["map"], "cardinality": report["cardinality"]})
    return rows
