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

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .. import artifacts
from ..config import multi_label
from ..data import has_gold, load_heldout, load_pool
from ..errors import DistillError
from ..evaluation.metrics import label_ids
from ..labelling import label_split
from ..labelstore import read_labels
from ..weak.combine import Combiner, SplitVotes, check_weak, find_noise, frame, score_rows
from ..weak.sources import Source, build_sources
from ..weak.summary import lf_summary, render

log = logging.getLogger(__name__)


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


def anchors(cfg: DictConfig, texts: list[str]):
    """([N] the label a person gave each pool text in a review, -1 elsewhere; the answers). The random part
    is left out: it is what the estimates rest on."""
    answers = artifacts.review_answers(cfg)
    given = {t: g for t, g, part in zip(answers.texts, answers.gold_ids, answers.parts) if part != "random"}
    known = np.array([given.get(t, -1) for t in texts])
    if (known >= 0).any():
        log.info("weak: %d reviewed texts anchor the label model (their answers held fixed)", int((known >= 0).sum()))
    return known, answers


def reviewed_accuracy(sources: list[Source], pool: SplitVotes, answers, labels: list[str]) -> dict | None:
    """Each source's accuracy on the random review sample (where it voted): what the answers say of it."""
    random = {answers.texts[i]: answers.gold_ids[i] for i in answers.part("random")}
    rows = [i for i, t in enumerate(pool.texts) if t in random]
    if not rows:
        return None
    gold = np.array([random[pool.texts[i]] for i in rows])
    out = {}
    for source in sources:
        ids = np.asarray(pool.ids[source.name])[rows]
        voted = ids >= 0
        out[source.name] = {"n": int(voted.sum()),
                            "accuracy": float((ids[voted] == gold[voted]).mean()) if voted.any() else None}
    return out


def run(cfg: DictConfig) -> dict:
    if multi_label(cfg):
        raise DistillError("weak supervision combines one label a text: it is single-label only (a label model a "
                           "label is not built yet); for multi-label data run stage=label with a teacher")
    weak = check_weak(cfg.get("weak"))
    labels, data_dir = list(cfg.data.labels), os.path.expanduser(cfg.paths.data)
    sources = build_sources(cfg)
    pool = collect(cfg, sources, "pool", load_pool(cfg.data, data_dir))
    gold_data = has_gold(cfg.data)  # without gold: the combined pool labels, and what the sources say of each other
    heldout = load_heldout(cfg.data, data_dir) if gold_data else None  # gold stays aside until all is fitted
    held = collect(cfg, sources, "heldout", heldout.texts) if gold_data else None

    known, answers = anchors(cfg, pool.texts)
    combiner = Combiner(weak, sources, labels).fit(pool, known=known)
    out_dir = artifacts.weak_dir(cfg)
    results = {}
    for name, split in (("pool", pool), ("heldout", held)):
        if split is None:
            continue
        predictions = combiner.predict(split)
        probs = predictions[weak.label_model]
        flags, suggested, weights = find_noise(weak, split, combiner.votes(split), probs)
        path = out_dir / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = frame(split, sources, labels, probs, flags, weights, suggested)
        table.to_parquet(path.with_suffix(".tmp"), index=False)
        os.replace(path.with_suffix(".tmp"), path)
        results[name] = (predictions, probs, flags, weights, path)

    # Scoring only: held-out gold against every source and label model.
    gold = label_ids(heldout.gold, labels) if gold_data else None
    summary = summarise(cfg, sources, combiner, pool, held, results, gold)
    summary["anchored_by_answers"] = int((known >= 0).sum())
    summary["reviewed_accuracy"] = reviewed_accuracy(sources, pool, answers, labels)
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
    held_rows = score_rows(held, sources, results["heldout"][0], gold, k) if gold is not None else []
    singles = [r for r in held_rows if r["kind"] != "label model"]
    best = max(singles, key=lambda r: r["accuracy_all"]) if singles else None
    model = combiner.models[weak.teacher_votes == "soft"]
    summary = {
        "data": cfg.data.name, "weak": weak.name, "labels": labels, "label_model": str(weak.label_model),
        "teacher_votes": str(weak.teacher_votes), "n_pool": len(pool.texts),
        "n_heldout": len(held.texts) if held is not None else 0, "gold": gold is not None,
        "class_prior": dict(zip(labels, model.prior_.tolist())), "em_iterations": model.n_iter_,
        "sources": [{"name": s.name, "kind": s.kind, "pool_labels": pool.paths.get(s.name),
                     "heldout_labels": held.paths.get(s.name) if held is not None else None,
                     "teacher": OmegaConf.to_container(s.cfg.teacher, resolve=True) if s.is_teacher else None}
                    for s in sources],
        "pool_lfs": pool_rows, "heldout": held_rows,
        "best_single_source": {"name": best["name"], "accuracy": best["accuracy_all"]} if best else None,
        "paths": {name: str(r[4]) for name, r in results.items()},
        "identity": artifacts.weak_identity(cfg),
        "heldout_identity": artifacts.data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))["heldout"]
        if gold is not None else None,
    }
    flags_pool, weights_pool = results["pool"][2], results["pool"][3]
    if flags_pool is not None:
        flags_held = results["heldout"][2] if gold is not None else None
        wrong = results["heldout"][1].argmax(1) != gold if gold is not None else None
        summary["noise"] = {
            "mode": weak.noise, "features": list(weak.noise_features), "folds": weak.folds,
            "flagged": int(flags_pool.sum()), "mean_weight": float(weights_pool.mean()),
            "heldout_flagged": int(flags_held.sum()) if flags_held is not None else None,
            "heldout_flagged_precision": float(wrong[flags_held].mean()) if flags_held is not None and flags_held.any() else None,
            "heldout_unflagged_error": float(wrong[~flags_held].mean()) if flags_held is not None and (~flags_held).any() else None,
        }
    return summary
