"""Stage `review`: a queue of texts for a person to label, written as a CSV to fill in (and JSONL).

    distill stage=review                      # -> outputs/review/<data>/round-1.csv
    (fill the `gold` column in a spreadsheet, save)
    distill                                   # eval: accuracy on the answers with 95% intervals; training
                                              # learns the chosen texts' answers
    distill stage=review                      # round 2 leaves out what was answered

What goes in the queue and why: distill/review/queue.py. The answers are read back by `review.answers`
(auto: the round files here).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from .. import artifacts
from ..config import multi_label
from ..errors import DistillError
from ..labelstore import read_labels
from ..review.answers import answer_files, read_answers
from ..review.labelstudio import write_tasks
from ..review.queue import REASONS, Candidates, compose
from ..students.folder import is_trained
from ..students.load import load_classifier
from ..students.trainset import holdout_rows

log = logging.getLogger(__name__)


def candidates(cfg: DictConfig) -> Candidates:
    """The labelled pool, the student's view of it (when one is trained) and the weak sources' votes."""
    labels, path = list(cfg.data.labels), artifacts.trained_labels(cfg)
    if not path.exists():
        stage = "weak" if artifacts.uses_weak(cfg) else "label"
        raise DistillError(f"stage=review: no labels to review at {path}; run `distill stage={stage}` (or the whole "
                           f"job, `distill`) with the same settings first")
    texts, probs = read_labels(path, labels)
    frame = pd.read_parquet(path, columns=None)
    c = Candidates(texts=texts, teacher=probs, labels=labels, ids=frame["id"].to_numpy() if "id" in frame else None,
                   rows=frame["row"].to_numpy() if "row" in frame else None,
                   votes={col[len("vote."):]: frame[col].tolist() for col in frame.columns if col.startswith("vote.")})
    if "noisy" in frame:
        c.noisy = frame["noisy"].to_numpy(bool)
        c.suggested = frame["noise_suggests"].tolist() if "noise_suggests" in frame else None
    folder = artifacts.student_dir(cfg)
    c.unseen = np.zeros(len(texts), dtype=bool)
    if is_trained(folder):
        log.info("review: the student at %s labels the %d texts too", folder, len(texts))
        c.student = load_classifier(folder, device=cfg.train.device).predict_proba(
            texts, batch_size=max(cfg.eval.batch_sizes), progress=True)
        try:
            trained_path, rows = artifacts.unseen_rows(folder)
            if trained_path.resolve() == path.resolve():
                c.unseen[rows] = True
        except DistillError:  # trained on every text: the random part is drawn from all of them
            pass
    else:  # the texts a student trained with these settings will keep out
        c.unseen[holdout_rows(len(texts), artifacts.holdout(cfg), cfg.train.seed)] = True
    return c


def next_round(folder: Path) -> Path:
    """round-N.csv: a new round after the last one, or the last one again when nothing in it was answered
    (nothing of the person's is ever overwritten)."""
    stems = [p.stem[len("round-"):] for p in folder.glob("round-*.csv")]
    numbers = sorted(int(n) for n in stems if n.isdigit())
    if not numbers:
        return folder / "round-1.csv"
    last = folder / f"round-{numbers[-1]}.csv"
    try:
        gold = pd.read_csv(last, dtype=str, keep_default_na=False, encoding="utf-8-sig")["gold"]
        untouched = not gold.str.strip().astype(bool).any()
    except Exception:  # unreadable, or no gold column: the person's file, left alone
        untouched = False
    return last if untouched else folder / f"round-{numbers[-1] + 1}.csv"


def run(cfg: DictConfig) -> dict:
    if multi_label(cfg):
        raise DistillError("stage=review asks for one label a text: it is single-label only (multi-label review "
                           "is not built yet)")
    review = cfg.review
    if review.size < 1 or not 0 <= review.random <= review.size:
        raise DistillError(f"review.size must be at least 1 and review.random between 0 and review.size, got "
                           f"review.size={review.size}, review.random={review.random}")
    labels, folder = list(cfg.data.labels), artifacts.review_dir(cfg)
    answered = read_answers(answer_files(review.answers, folder), labels)
    c = candidates(cfg)
    queue = compose(c, review.size, review.random, review.seed, set(answered.texts))
    if queue.empty:
        raise DistillError(f"stage=review: every labelled text is answered already ({len(answered)} answers); "
                           f"label more texts (data.pool_size) for another round")
    path = next_round(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    queue.to_csv(tmp, index=False, encoding="utf-8-sig")  # the BOM: spreadsheets then read it as UTF-8
    tmp.replace(path)
    jsonl = path.with_suffix(".jsonl")
    queue.to_json(jsonl.with_name(jsonl.name + ".tmp"), orient="records", lines=True, force_ascii=False)
    jsonl.with_name(jsonl.name + ".tmp").replace(jsonl)
    studio = write_tasks(queue, labels, path.with_suffix(".labelstudio.json"))
    counts = {"random": int((queue["part"] == "random").sum()), "chosen": int((queue["part"] == "chosen").sum())}
    reasons = {text: int(queue["why"].str.startswith(text).sum()) for text in REASONS.values()}
    artifacts.write_json(path.with_suffix(".meta.json"), {
        "queue": str(path), "counts": counts, "reasons": reasons, "answered_before": len(answered), "labels": labels,
        "labels_path": str(artifacts.trained_labels(cfg)), "seed": review.seed})
    why = ", ".join(f"{n} {text}" for text, n in reasons.items() if n)
    print(f"\nreview: {len(queue)} texts to label -> {path}\n"
          f"  {counts['random']} random (what accuracy estimates rest on), {counts['chosen']} chosen"
          + (f" ({why})" if why else "") + (f"; {len(answered)} answered before are left out" if len(answered) else "")
          + f"\n  Fill the `gold` column with one of: {', '.join(labels)} (leave a cell empty to skip it), save the "
          f"file as CSV, then run `distill` again:\n  eval reports accuracy on your answers with 95% intervals, and "
          f"the chosen texts' answers join training.\n  Or in Label Studio: import {studio.name} into a project "
          f"labelled with {studio.parent / 'labelstudio.xml'}, export it as JSON, and run "
          f"`distill review.answers=<export>.json`.")
    return {"queue": str(path), "jsonl": str(jsonl), "labelstudio": str(studio), **counts,
            "answered_before": len(answered),
            "reasons": json.loads(json.dumps(reasons))}
