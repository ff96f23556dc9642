#!/usr/bin/env python
"""teacher=auto against gold: does the gold-free choice land on the best teacher?

For each label set, `--texts` seeded texts go into a file of their own and `distill` runs teacher=auto on it
exactly as a user would (`distill.stages.resolve_teacher`: every candidate labels the texts, a one-coin
Dawid-Skene label model estimates each one's accuracy without gold, the highest wins). Gold is read only
here, afterwards, to score every candidate on the same texts. Label sets (gold for scoring only):

  sst2 (2), ag_news (4), sms_spam (2), tweeteval_emotion (4), goemotions (28: dev texts with one emotion),
  mixed (32: GoEmotions' 28 emotions + AG News' 4 topics, half the texts from each),
  banking77 (77 intents; its test.csv is not in ../shared: --banking77 PATH, see bench_labels_scaling.py)

Writes outputs/bench/teacher_choice.{json,md}: per set, every candidate's estimated and gold accuracy, the
choice, and its gap to the best candidate.

    python scripts/bench_teacher_choice.py                      # 200 texts a set, every set
    python scripts/bench_teacher_choice.py --texts 100 --sets sst2,goemotions
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_labels_scaling import SHARED, label_set  # noqa: E402  (the same sets as the scaling benchmark)

SIZES = {"sst2": 2, "ag_news": 4, "goemotions": 28, "mixed": 32, "banking77": 77}


def texts_of(name: str, n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """(texts, gold label names, label names) of `n` seeded texts of set `name`."""
    rng = np.random.default_rng(seed)
    if name in SIZES:
        return label_set(SIZES[name], n, seed)
    if name == "sms_spam":
        frame = pd.read_csv(SHARED / "data/sms_spam/SMSSpamCollection", sep="\t", header=None, names=["label", "text"],
                            quoting=3)
        pick = rng.choice(len(frame), n, replace=False)
        return frame["text"].iloc[pick].tolist(), frame["label"].iloc[pick].tolist(), ["ham", "spam"]
    if name == "tweeteval_emotion":
        folder = SHARED / "data/tweeteval_emotion"
        labels = [line.split("\t")[1] for line in (folder / "mapping.txt").read_text().splitlines() if line.strip()]
        texts = (folder / "test_text.txt").read_text(encoding="utf-8").splitlines()
        gold = [labels[int(x)] for x in (folder / "test_labels.txt").read_text().split()]
        pick = rng.choice(len(texts), n, replace=False)
        return [texts[i] for i in pick], [gold[i] for i in pick], labels
    raise SystemExit(f"unknown set {name}; sets: sst2, ag_news, sms_spam, tweeteval_emotion, goemotions, mixed")


def run_set(name: str, n: int, seed: int, outputs: Path, overrides: list[str]) -> dict:
    from distill.config import load_config
    from distill.labelstore import read_labels
    from distill.stages import resolve_teacher
    from distill.weak.choice import candidate_config, choice_dir

    texts, gold, labels = texts_of(name, n, seed)
    folder = outputs / name
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"text": texts}).to_csv(folder / "texts.csv", index=False)
    cfg = load_config(["data=file", f"data.pool.path={folder / 'texts.csv'}", f"data.name=choice-{name}",
                       "data.labels=[" + ",".join(json.dumps(x) for x in labels) + "]", "teacher=auto",
                       f"teacher.sample={n}", f"paths.outputs={outputs}", *overrides])
    candidates = {c: candidate_config(cfg, c) for c in cfg.teacher.candidates}
    where = choice_dir(cfg, candidates)
    chosen = resolve_teacher(cfg).teacher.name
    choice = json.loads((where / "choice.json").read_text())
    truth = {t.strip(): g for t, g in zip(texts, gold)}  # the reader strips each text
    rows = []
    for row in choice["candidates"]:
        seen, probs = read_labels(where / row["teacher"] / "labels.parquet", labels)
        pred = [labels[i] for i in probs.argmax(1)]
        rows.append({**row, "gold_accuracy": float(np.mean([p == truth[t.strip()] for p, t in zip(pred, seen)]))})
    best = max(rows, key=lambda r: r["gold_accuracy"])
    picked = next(r for r in rows if r["teacher"] == chosen)
    return {"set": name, "labels": len(labels), "texts": len(texts), "chosen": chosen, "best": best["teacher"],
            "chosen_accuracy": picked["gold_accuracy"], "best_accuracy": best["gold_accuracy"],
            "gap": best["gold_accuracy"] - picked["gold_accuracy"], "candidates": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="sst2,ag_news,sms_spam,tweeteval_emotion,goemotions,mixed")
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outputs", default="outputs/bench/teacher-choice")
    parser.add_argument("--out", default="outputs/bench/teacher_choice.json")
    parser.add_argument("--banking77", help="Banking77's test.csv, for the banking77 set (or BANKING77_CSV)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. 'teacher.candidates=[deberta-v3-nli,mpnet]'")
    args = parser.parse_args(argv)
    if args.banking77:
        os.environ["BANKING77_CSV"] = str(Path(args.banking77).resolve())
    from distill.evaluation.metrics import markdown_table
    from distill.evaluation.timing import machine, write_bench

    results = [run_set(name, args.texts, args.seed, Path(args.outputs).resolve(), args.overrides)
               for name in args.sets.split(",")]
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "texts": args.texts, "seed": args.seed, "overrides": args.overrides}
    table = markdown_table(
        ["set", "labels", "candidates: estimated (no gold) / gold accuracy", "chosen", "best on gold", "gap (points)"],
        [[r["set"], r["labels"], "; ".join(f"{c['teacher']} {c['estimated_accuracy']:.2f} / {c['gold_accuracy']:.2f}"
                                            for c in r["candidates"]),
          r["chosen"], r["best"], f"{100 * r['gap']:.1f}"] for r in results])
    worst = max(r["gap"] for r in results)
    m = meta["machine"]
    write_bench(args.out, {"_meta": meta, "rows": results},
                f"{table}\n\n{args.texts} seeded texts a set; teacher=auto chose without gold, gold scored afterwards. "
                f"Largest gap to the best candidate: {100 * worst:.1f} points. {m['cpu_summary']}, {m['cores']} "
                f"cores, {meta['date']}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
