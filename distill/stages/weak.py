"""Stage `weak`: every source labels pool and held-out texts, one label model combines them.

1. Each teacher source labels both splits through the label stage (cached at its usual content-keyed
   path, so a rerun relabels nothing); the labelling functions run on the texts (cheap).
2. On the POOL only (no gold): each teacher's temperature is fitted to the consensus of the other
   sources, then the label model (`weak.label_model`) is fitted to the calibrated votes.
3. The fitted model labels both splits; confident learning flags likely wrong labels (`weight`).
4. outputs/weak/<data>/<name>-<key>/pool.parquet (what stage=train learns from when `weak` is set),
   heldout.parquet, and summary.{json,md}: held-out gold accuracy of every source and label model
   (gold is read here for scoring only, after everything is fitted).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .. import artifacts
from ..data import load_heldout, load_pool
from ..errors import DistillError
from ..labelstore import prob_columns, read_labels
from ..evaluation.metrics import label_ids, score
from ..weak import calibration, labelmodel, noise
from ..weak.sources import ABSTAIN, Source, build_sources
from ..weak.summary import combine_ids, lf_summary, render
from .label import label_split

log = logging.getLogger(__name__)


@dataclass
class SplitVotes:
    """What every source said about one split: teachers' probabilities, LFs' label ids."""

    texts: list[str]
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # teacher -> [N, K]
    ids: dict[str, np.ndarray] = field(default_factory=dict)  # every source -> [N] argmax / vote, ABSTAIN
    paths: dict[str, str] = field(default_factory=dict)  # teacher -> its labels.parquet


def collect(cfg: DictConfig, sources: list[Source], split: str, texts: list[str]) -> SplitVotes:
    labels = list(cfg.data.labels)
    out = SplitVotes(texts=texts)
    for source in sources:
        if source.is_teacher:
            result = label_split(source.cfg, split)  # cached and resumable like any labelling
            their_texts, probs = read_labels(result.path, labels)
            if their_texts != texts:
                raise DistillError(f"{result.path} does not hold this {split}'s texts; delete it and run again")
            out.probs[source.name], out.paths[source.name] = probs.astype(np.float64), str(result.path)
            out.ids[source.name] = probs.argmax(1)
        else:
            out.ids[source.name] = source.apply(texts)
    return out


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

    def fit(self, pool: SplitVotes) -> "Combiner":
        if self.weak.calibrate:
            self.calibrate(pool)
        self.models = {soft: self.dawid_skene().fit(self.votes(pool, soft)) for soft in (True, False)}
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
    """Confident-learning report and weights for one split's combined labels (None when noise=off)."""
    hard = probs.argmax(1)
    evidence = votes.sum((1, 2)) > 0  # a text no source voted on carries no label at all
    w = evidence.astype(np.float64)
    if weak.noise == "off" or len(np.unique(hard[evidence])) < 2 or evidence.sum() < 2 * weak.folds:
        return None, w
    x = noise.features(split.texts, votes, weak.noise_features)
    report = noise.confident_flags(noise.out_of_sample_probs(x[evidence], hard[evidence], probs.shape[1],
                                                             weak.folds, weak.seed), hard[evidence])
    w[evidence] = noise.weights(report, hard[evidence], "off" if weak.noise == "flag" else weak.noise)
    flags = np.zeros(len(hard), dtype=bool)
    flags[evidence] = report.flags
    return flags, w


def frame(split: SplitVotes, sources: list[Source], labels: list[str], probs: np.ndarray,
          flags, weights: np.ndarray) -> pd.DataFrame:
    """The labelstore columns (id, text, prob_*, label, confidence), then vote.<source>,
    <teacher>.prob_<label>, noisy and weight."""
    best = probs.argmax(1)
    out = {"id": np.arange(len(split.texts)), "text": split.texts}
    out.update({col: probs[:, k].astype(np.float32) for k, col in enumerate(prob_columns(labels))})
    out["label"] = [labels[i] for i in best]
    out["confidence"] = probs[np.arange(len(best)), best].astype(np.float32)
    for source in sources:
        out[f"vote.{source.name}"] = [None if i == ABSTAIN else labels[i] for i in split.ids[source.name]]
        if source.is_teacher:
            for k, col in enumerate(prob_columns(labels)):
                out[f"{source.name}.{col}"] = split.probs[source.name][:, k].astype(np.float32)
    out["noisy"] = flags if flags is not None else np.zeros(len(best), dtype=bool)
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


def run(cfg: DictConfig) -> dict:
    weak = check_weak(cfg.get("weak"))
    labels, data_dir = list(cfg.data.labels), os.path.expanduser(cfg.paths.data)
    sources = build_sources(cfg)
    pool = collect(cfg, sources, "pool", load_pool(cfg.data, data_dir))
    heldout = load_heldout(cfg.data, data_dir)  # gold stays aside until everything is fitted
    held = collect(cfg, sources, "heldout", heldout.texts)

    combiner = Combiner(weak, sources, labels).fit(pool)
    out_dir = artifacts.weak_dir(cfg)
    results = {}
    for name, split in (("pool", pool), ("heldout", held)):
        predictions = combiner.predict(split)
        probs = predictions[weak.label_model]
        flags, weights = find_noise(weak, split, combiner.votes(split), probs)
        path = out_dir / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame(split, sources, labels, probs, flags, weights).to_parquet(path.with_suffix(".tmp"), index=False)
        os.replace(path.with_suffix(".tmp"), path)
        results[name] = (predictions, probs, flags, weights, path)

    # Scoring only: held-out gold against every source and label model.
    gold = label_ids(heldout.gold, labels)
    summary = summarise(cfg, sources, combiner, pool, held, results, gold)
    artifacts.write_json(out_dir / "summary.json", summary)
    (out_dir / "summary.md").write_text(render(summary))
    print("\n" + render(summary))
    log.info("weak: %d sources, %s on %d pool texts -> %s", len(sources), weak.label_model, len(pool.texts),
             results["pool"][4])
    return {"labels_path": str(results["pool"][4]), "weak_dir": str(out_dir), "n_texts": len(pool.texts),
            "heldout": summary["heldout"], "best_single_source": summary["best_single_source"]}


def summarise(cfg, sources, combiner, pool, held, results, gold) -> dict:
    weak, labels, k = cfg.weak, list(cfg.data.labels), len(cfg.data.labels)
    names = [s.name for s in sources]
    pool_rows = lf_summary(np.stack([pool.ids[n] for n in names], 1), names, labels)
    learned = combiner.learned_accuracies()
    for r in pool_rows:
        r["learned_accuracy"] = learned[r["source"]]
        r["temperature"] = combiner.temperatures.get(r["source"])
    held_rows = score_rows(held, sources, results["heldout"][0], gold, k)
    singles = [r for r in held_rows if r["kind"] != "label model"]
    best = max(singles, key=lambda r: r["accuracy_all"])
    model = combiner.models[weak.teacher_votes == "soft"]
    summary = {
        "data": cfg.data.name, "weak": weak.name, "labels": labels, "label_model": weak.label_model,
        "teacher_votes": weak.teacher_votes, "n_pool": len(pool.texts), "n_heldout": len(held.texts),
        "class_prior": dict(zip(labels, model.prior_.tolist())), "em_iterations": model.n_iter_,
        "sources": [{"name": s.name, "kind": s.kind, "pool_labels": pool.paths.get(s.name),
                     "heldout_labels": held.paths.get(s.name),
                     "teacher": OmegaConf.to_container(s.cfg.teacher, resolve=True) if s.is_teacher else None}
                    for s in sources],
        "pool_lfs": pool_rows, "heldout": held_rows,
        "best_single_source": {"name": best["name"], "accuracy": best["accuracy_all"]},
        "paths": {name: str(r[4]) for name, r in results.items()},
        "identity": artifacts.weak_identity(cfg),
        "heldout_identity": artifacts.data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))["heldout"],
    }
    flags_pool, weights_pool = results["pool"][2], results["pool"][3]
    if flags_pool is not None:
        flags_held = results["heldout"][2]
        wrong = results["heldout"][1].argmax(1) != gold
        summary["noise"] = {
            "mode": weak.noise, "features": list(weak.noise_features), "folds": weak.folds,
            "flagged": int(flags_pool.sum()), "mean_weight": float(weights_pool.mean()),
            "heldout_flagged": int(flags_held.sum()) if flags_held is not None else None,
            "heldout_flagged_precision": float(wrong[flags_held].mean()) if flags_held is not None and flags_held.any() else None,
            "heldout_unflagged_error": float(wrong[~flags_held].mean()) if flags_held is not None and (~flags_held).any() else None,
        }
    return summary
