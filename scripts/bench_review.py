#!/usr/bin/env python
"""The review loop, with the gold labels of a shared data set playing the person who answers the queue.

(a) Are the intervals honest? For each of `--seeds` seeds, a review round's random part (`--random` texts,
    drawn as stage=review draws it) is answered from gold; the teacher's accuracy on it gets a 95% Wilson
    interval, and we count how often that interval covers the teacher's accuracy on the whole held-out set.
    Close to 95% is right; far below would mean the interval lies.
(b) Do the chosen texts teach more than random ones? One round of `--random` random + `--chosen` chosen
    texts is answered and fed back (the chosen ones join training with their gold label, the random ones are
    kept out for the estimate), against random texts all joining training (200, and 100: like for like).
    Each student is scored on the held-out gold set, beside the student trained without answers; every arm is
    trained `--train-seeds` times (one seed each) and its gain taken seed by seed, since a training differs
    from the next by a point or two with the seed alone.

Writes outputs/bench/review.json and review.md.

    python scripts/bench_review.py                                   # sst2, ag_news, sms_spam
    python scripts/bench_review.py --datasets sst2 --seeds 20 --skip-training
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from distill import artifacts
from distill.config import data_preset, load_config
from distill.data import load_heldout, pool_gold
from distill.evaluation.intervals import wilson
from distill.evaluation.metrics import label_ids, markdown_table
from distill.evaluation.timing import machine, write_bench
from distill.labelling import label_split
from distill.labelstore import read_labels
from distill.review.queue import compose
from distill.stages import run_stage
from distill.stages.review import candidates
from distill.students.load import load_classifier

DATASETS = "sst2,ag_news,sms_spam"
ARMS = ("without", "chosen", "random", "random_half")


def config(data: str, extra: list[str], answers: str = "null"):
    preset = data_preset(data)
    return load_config([preset, f"review.answers={answers}", *extra])


def answered(queue: pd.DataFrame, gold: list, rows: np.ndarray, part: str | None = None) -> pd.DataFrame:
    """The queue with its `gold` column filled from the data set's gold labels."""
    out = queue.copy()
    out["gold"] = [gold[int(rows[i])] for i in out["id"]]
    if part:
        out["part"] = part
    return out[out["gold"].notna()]


def student_accuracy(folder: Path, texts: list[str], gold: np.ndarray, batch_size: int = 64) -> float:
    probs = load_classifier(folder, device="auto").predict_proba(texts, batch_size=batch_size)
    return float((probs.argmax(1) == gold).mean())


def run_data(data: str, args, extra: list[str]) -> dict:
    cfg = config(data, extra)
    for stage in ("label", "train"):  # the labels and the student without answers (cached when made before)
        cfg.stage = stage
        base = run_stage(cfg)
    labels, data_dir = list(cfg.data.labels), os.path.expanduser(cfg.paths.data)
    held = load_heldout(cfg.data, data_dir)
    held_gold = label_ids(held.gold, labels)
    teacher_held = read_labels(label_split(cfg, "heldout").path, labels)[1]  # labelled by eval before: cached
    teacher_accuracy = float((teacher_held.argmax(1) == held_gold).mean())
    gold = pool_gold(cfg.data, data_dir)
    c = candidates(cfg)
    if c.rows is None:  # labelled by a distill that did not record rows yet: relabel to include this set
        logging.warning("%s: the label file has no `row` column to find the gold labels by; skipped", data)
        return {"data": data, "skipped": "the label file records no rows (made by an older distill)"}
    rows = np.asarray(c.rows)
    teacher_pred = c.teacher.argmax(1)

    covered, widths = [], []
    for seed in range(args.seeds):
        queue = compose(c, args.random, args.random, seed)
        ids = queue["id"].to_numpy()
        right = sum(labels[teacher_pred[i]] == gold[int(rows[i])] for i in ids)
        low, high = wilson(right, len(ids))
        covered.append(low <= teacher_accuracy <= high)
        widths.append(high - low)
    result = {"data": data, "teacher_heldout_accuracy": teacher_accuracy, "n_heldout": len(held.texts),
              "seeds": args.seeds, "random": args.random, "coverage": float(np.mean(covered)),
              "mean_interval_width": float(np.mean(widths))}
    if args.skip_training:
        result["student_without_answers"] = student_accuracy(Path(base["student_dir"]), held.texts, held_gold)
        return result

    folder = artifacts.review_dir(cfg).parent.parent / "bench" / "review" / data
    folder.mkdir(parents=True, exist_ok=True)
    queue = answered(compose(c, args.random + args.chosen, args.random, 0), gold, rows)
    queue.to_csv(folder / "chosen.csv", index=False)
    result["chosen_teacher_wrong"] = int((queue["teacher_label"] != queue["gold"])[queue["part"] == "chosen"].sum())
    rng = np.random.default_rng(1)
    pick = rng.choice(len(c.texts), size=args.random + args.chosen, replace=False)
    plain = pd.DataFrame({"id": pick, "text": [c.texts[i] for i in pick], "gold": ""})
    answered(plain, gold, rows, part="given").to_csv(folder / "random.csv", index=False)
    # as many random answers in training as the chosen arm has (its random part is kept out, for the estimate)
    answered(plain.iloc[:args.chosen], gold, rows, part="given").to_csv(folder / "random_half.csv", index=False)
    result["random_half_teacher_wrong"] = int(sum(labels[teacher_pred[i]] != gold[int(rows[i])]
                                                  for i in pick[:args.chosen]))
    # one training differs from the next by a point or two with the seed alone: each arm is trained with the
    # same `--train-seeds` seeds (the seed sets the kept-out rows and the initialisation) and compared paired
    seeds = [int(cfg.train.seed) + k for k in range(args.train_seeds)]
    result["train_seeds"] = seeds
    accuracy = {name: [] for name in ARMS}
    for s in seeds:
        for name in ARMS:
            answers = "null" if name == "without" else str(folder / f"{name}.csv")
            trained = run_stage(config(data, extra + ["stage=train", f"train.seed={s}"], answers=answers))
            accuracy[name].append(student_accuracy(Path(trained["student_dir"]), held.texts, held_gold))
            if name != "without":
                result[f"{name}_answers_trained_on"] = trained.get("answers_trained_on")
    for name in ARMS:
        result[f"student_{name}_answers"] = accuracy[name]
        result[f"mean_{name}"] = float(np.mean(accuracy[name]))
        if name != "without":
            gains = np.subtract(accuracy[name], accuracy["without"])
            result[f"gain_{name}"] = [float(g) for g in gains]
            result[f"mean_gain_{name}"] = float(gains.mean())
    return result


def gain(r: dict, name: str) -> str:
    if f"mean_gain_{name}" not in r:
        return "-"
    g = 100 * np.asarray(r[f"gain_{name}"])
    return (f"{r[f'mean_{name}']:.4f} ({g.mean():+.1f} pt; {g.min():+.1f} to {g.max():+.1f})"
            if len(g) > 1 else f"{r[f'mean_{name}']:.4f} ({g.mean():+.1f} pt)")


def render(rows: list[dict], meta: dict) -> str:
    table = markdown_table(
        ["data", "teacher (held-out)", f"coverage of the 95% interval ({rows[0]['seeds']} seeds)", "mean width",
         "student", "+ 100 random & 100 chosen answers", "+ 100 random answers", "+ 200 random answers",
         "teacher labels corrected (chosen / 100 random)"],
        [[r["data"], r["teacher_heldout_accuracy"], f"{100 * r['coverage']:.0f}%",
          f"{100 * r['mean_interval_width']:.1f} pt", r.get("mean_without", r.get("student_without_answers")),
          gain(r, "chosen"), gain(r, "random_half"), gain(r, "random"),
          f"{r['chosen_teacher_wrong']} / {r['random_half_teacher_wrong']}" if "chosen_teacher_wrong" in r else "-"]
         for r in rows])
    m = meta["machine"]
    seeds = next((len(r["train_seeds"]) for r in rows if "train_seeds" in r), 0)
    return (f"{table}\n\nCoverage: how often the Wilson interval from {rows[0]['random']} random reviewed texts "
            f"held the teacher's accuracy on the whole held-out set. Students scored on the held-out gold, "
            f"the mean of {seeds} trainings (seeds) an arm, the gain paired seed by seed against the student without "
            f"answers (mean; lowest to highest). With 100 random and 100 chosen answers only the chosen 100 join "
            f"training (the random ones are kept out for the estimate), so 100 random answers in training is the "
            f"like-for-like comparison. On {m['cpu_summary']}, {m['cores']} cores, {meta['date']}.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--random", type=int, default=100)
    parser.add_argument("--chosen", type=int, default=100)
    parser.add_argument("--train-seeds", type=int, default=3, help="trainings an arm, each with its own seed")
    parser.add_argument("--skip-training", action="store_true", help="only the interval coverage (a)")
    parser.add_argument("--out", default="outputs/bench/review.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "overrides": args.overrides}
    rows = []
    for data in args.datasets.split(","):
        rows.append(run_data(data, args, list(args.overrides)))
        done = [r for r in rows if "skipped" not in r]
        if done:  # after every data set: what is measured survives a later failure
            write_bench(args.out, {"_meta": meta, "rows": rows}, render(done, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
