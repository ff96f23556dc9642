"""Stage `weak`: every source labels pool and held-out texts, one label model combines them (on multi-label data,
one binary label model a label: `run_per_label`, distill/weak/perlabel.py; no calibration or noise filter there).

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
from ..config import multi_label, none_index
from ..data import has_gold, load_heldout, load_pool
from ..errors import DistillError
from ..evaluation import multilabel as ml
from ..evaluation.metrics import label_ids
from ..labelling import label_split
from ..labelstore import join_sets, read_labels
from ..weak import perlabel
from ..weak.combine import Combiner, SplitVotes, check_weak, find_noise, frame, score_rows
from ..weak.sources import Source, build_sources
from ..weak.summary import lf_summary, render, render_per_label

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


def write_table(path, table) -> "os.PathLike":
    """`table` to `path` (parquet), atomically: a reader never finds half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path.with_suffix(".tmp"), index=False)
    os.replace(path.with_suffix(".tmp"), path)
    return path


def run(cfg: DictConfig) -> dict:
    weak = check_weak(cfg.get("weak"))
    labels, data_dir = list(cfg.data.labels), os.path.expanduser(cfg.paths.data)
    none = none_index(cfg)
    sources = build_sources(cfg)
    if multi_label(cfg):  # what multi-label cannot follow fails before anything is labelled
        perlabel.check(weak, sources, len(labels))
        if len(artifacts.review_answers(cfg)):
            raise DistillError("review answers give one label a text: they cannot anchor multi-label weak "
                               "supervision yet (set review.answers=null)")
    pool = collect(cfg, sources, "pool", load_pool(cfg.data, data_dir))
    gold_data = has_gold(cfg.data)  # without gold: the combined pool labels, and what the sources say of each other
    heldout = load_heldout(cfg.data, data_dir) if gold_data else None  # gold stays aside until all is fitted
    held = collect(cfg, sources, "heldout", heldout.texts) if gold_data else None
    if multi_label(cfg):
        return run_per_label(cfg, sources, pool, held, heldout, none)

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
        path = write_table(out_dir / f"{name}.parquet", frame(split, sources, labels, probs, flags, weights, suggested))
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


def run_per_label(cfg: DictConfig, sources: list[Source], pool: SplitVotes, held: SplitVotes | None, heldout,
                  none: int | None) -> dict:
    """Multi-label: one binary label model a label (weak/perlabel.py), fitted on the pool; the files as for
    single-label, with each text's label set (column `labels`, at weak.label_sets) and what each source said."""
    weak, labels, separator = cfg.weak, list(cfg.data.labels), cfg.data.label_separator
    if weak.noise != "off":
        log.info("weak: the noise filter (weak.noise=%s) and teacher calibration are single-label; on multi-label "
                 "data the teachers vote their sets and every combined label weighs 1", weak.noise)
    combiner = perlabel.PerLabel(weak, sources, labels, none).fit(pool)
    out_dir, results = artifacts.weak_dir(cfg), {}
    for name, split in [("pool", pool)] + ([("heldout", held)] if held is not None else []):
        predictions = combiner.predict(split)
        probs, said = predictions[weak.label_model], perlabel.source_sets(combiner.votes(split))
        votes = {s.name: [names or None for names in join_sets(said[:, i], labels, separator)]
                 for i, s in enumerate(sources)}
        path = write_table(out_dir / f"{name}.parquet", frame(
            split, sources, labels, probs, None, np.ones(len(split.texts)),
            sets=join_sets(combiner.sets(probs), labels, separator), said=votes))
        results[name] = (predictions, probs, path)

    # Scoring only: held-out gold sets against every source and label model.
    gold = ml.gold_sets(heldout.gold, labels, cfg.data.multi_label) if held is not None else None
    learned = combiner.learned()
    said = perlabel.source_sets(combiner.votes(pool))
    summary = {
        "data": cfg.data.name, "weak": weak.name, "labels": labels, "label_model": str(weak.label_model),
        "multi_label": True, "label_sets": str(weak.label_sets), "none_label": cfg.data.get("none_label"),
        "n_pool": len(pool.texts), "n_heldout": len(held.texts) if held is not None else 0, "gold": gold is not None,
        "label_rates": dict(zip(labels, [float(m.prior_[perlabel.PRESENT]) for m in combiner.models])),
        "sources": [{"name": s.name, "kind": s.kind, "pool_labels": pool.paths.get(s.name),
                     "heldout_labels": held.paths.get(s.name) if held is not None else None,
                     "label_sets": perlabel.teacher_rule(s) if s.is_teacher else None,
                     "teacher": OmegaConf.to_container(s.cfg.teacher, resolve=True) if s.is_teacher else None}
                    for s in sources],
        "pool_sources": [{"source": s.name, "kind": s.kind, "coverage": float((said[:, i].sum(1) > 0).mean()),
                          "cardinality": ml.cardinality(said[:, i]), **learned[s.name]}
                         for i, s in enumerate(sources)],
        "heldout": perlabel.score_rows(held, combiner, results["heldout"][0], gold) if gold is not None else [],
        "paths": {name: str(r[2]) for name, r in results.items()},
        "identity": artifacts.weak_identity(cfg),
        "heldout_identity": artifacts.data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))["heldout"]
        if gold is not None else None,
    }
    singles = [r for r in summary["heldout"] if r["kind"] != "label model"]
    best = max(singles, key=lambda r: r["micro_f1"]) if singles else None
    summary["best_single_source"] = {"name": best["name"], "micro_f1": best["micro_f1"]} if best else None
    artifacts.write_json(out_dir / "summary.json", summary)
    (out_dir / "summary.md").write_text(render_per_label(summary))
    print("\n" + render_per_label(summary))
    log.info("weak: %d sources, a %s a label on %d pool texts -> %s", len(sources), weak.label_model,
             len(pool.texts), results["pool"][2])
    return {"labels_path": str(results["pool"][2]), "weak_dir": str(out_dir), "n_texts": len(pool.texts),
            "heldout": summary["heldout"], "best_single_source": summary["best_single_source"]}
