#!/usr/bin/env python
"""Labelling cost against the number of labels: the full NLI teacher, the shortlist, and the ranker alone.

Label sets built from the shared data (gold for scoring only):
  2   SST-2 dev (negative, positive)
  4   AG News (World, Sports, Business, Sci/Tech)
  28  GoEmotions dev, the texts with exactly one gold emotion
  32  GoEmotions' 28 emotions + AG News' 4 topics, over half GoEmotions texts and half AG News texts
      (the largest set the shared data makes)
  77  Banking77 test (customer-service intents such as card_arrival), not in ../shared: its test.csv from
      https://github.com/PolyAI-LDN/task-specific-datasets (banking_data/, CC BY 4.0), given by --banking77
      or BANKING77_CSV

For each set, `--texts` texts (seeded) are labelled by: the full NLI teacher (teacher.shortlist=off), the
default (teacher.shortlist=auto: the shortlist from 16 labels on, the full teacher below), and, where the
default is the full teacher, nothing else; and the ranker alone (its own labels). Each contender runs in its
own process: texts/s, (text, label) pairs/s of NLI work, peak RSS (VmHWM), accuracy against gold, agreement
with the full teacher. Writes outputs/bench/labels_scaling.{json,md}.

    python scripts/bench_labels_scaling.py                        # 200 texts a set
    python scripts/bench_labels_scaling.py --texts 50 --sets 2,28
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(os.environ.get("DISTILL_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
AG = ["World", "Sports", "Business", "Sci/Tech"]


def banking77(n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    given = os.environ.get("BANKING77_CSV", "")
    path = Path(given)
    if not given or not path.is_file():
        raise SystemExit("the 77-label set needs Banking77's test.csv (git clone https://github.com/PolyAI-LDN/"
                         "task-specific-datasets; banking_data/test.csv): pass --banking77 PATH or set BANKING77_CSV")
    frame = pd.read_csv(path)
    labels = sorted(frame["category"].unique())
    pick = np.random.default_rng(seed).choice(len(frame), n, replace=False)
    return frame["text"].iloc[pick].tolist(), frame["category"].iloc[pick].tolist(), labels


def goemotions(seed: int) -> tuple[list[str], list[str], list[str]]:
    labels = (SHARED / "data/goemotions/emotions.txt").read_text().split()
    texts, gold = [], []
    for line in (SHARED / "data/goemotions/dev.tsv").read_text(encoding="utf-8").splitlines():
        text, ids, _ = line.split("\t")
        if "," not in ids:
            texts.append(text)
            gold.append(labels[int(ids)])
    return texts, gold, labels


def label_set(size: int, n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """(texts, gold label names, label names) of `n` seeded texts."""
    rng = np.random.default_rng(seed)
    if size == 77:
        return banking77(n, seed)
    if size == 2:
        frame = pd.read_csv(SHARED / "data/sst2/dev.tsv", sep="\t", quoting=3)
        pick = rng.choice(len(frame), n, replace=False)
        return (frame["sentence"].iloc[pick].tolist(), [["negative", "positive"][g] for g in frame["label"].iloc[pick]],
                ["negative", "positive"])
    ag = pd.read_csv(SHARED / "data/ag_news/test.csv")
    ag_texts = (ag["title"] + ". " + ag["description"]).tolist()
    ag_gold = [AG[g - 1] for g in ag["label"]]
    if size == 4:
        pick = rng.choice(len(ag_texts), n, replace=False)
        return [ag_texts[i] for i in pick], [ag_gold[i] for i in pick], AG
    texts, gold, labels = goemotions(seed)
    if size == 28:
        pick = rng.choice(len(texts), n, replace=False)
        return [texts[i] for i in pick], [gold[i] for i in pick], labels
    if size == 32:
        half = n // 2
        a = rng.choice(len(texts), half, replace=False)
        b = rng.choice(len(ag_texts), n - half, replace=False)
        return ([texts[i] for i in a] + [ag_texts[i] for i in b], [gold[i] for i in a] + [ag_gold[i] for i in b],
                labels + AG)
    raise SystemExit(f"no label set of size {size} (2, 4, 28, 32, 77)")


def one(spec: dict) -> dict:
    """In a child process: build one teacher, label the texts, report."""
    from distill.config import load_config
    from distill.labelstore import WEAK_LIFT, separation
    from distill.teachers import build_teacher
    from distill.teachers.base import top_margin

    texts, gold, labels = label_set(spec["size"], spec["texts"], spec["seed"])
    cfg = load_config([f"teacher={spec['teacher']}", f"data.labels=[{','.join(json.dumps(x) for x in labels)}]",
                       *spec["overrides"]])
    teacher = build_teacher(cfg.teacher, labels)
    if spec["mode"] == "ranker":
        teacher = teacher.ranker
    teacher.predict_proba(texts[:4])  # warm-up
    start = time.perf_counter()
    probs = teacher.predict_proba(texts)
    seconds = time.perf_counter() - start
    k = getattr(teacher, "k", None)
    pairs = 0 if spec["mode"] == "ranker" else len(texts) * (k or len(labels))
    peak = next((int(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith("VmHWM")), None)
    pred = [labels[i] for i in probs.argmax(1)]
    lift = separation(float(probs.max(1).mean()), float(top_margin(probs).mean()), len(labels))["lift"]
    return {"seconds": seconds, "texts_per_s": len(texts) / seconds, "pairs_per_s": pairs / seconds if pairs else None,
            "peak_rss_mb": peak, "accuracy": float(np.mean([p == g for p, g in zip(pred, gold)])), "pred": pred,
            "k": k, "lift": lift, "warned": lift < WEAK_LIFT}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="2,4,28,32")
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher", default="deberta-v3-nli")
    parser.add_argument("--out", default="outputs/bench/labels_scaling.json")
    parser.add_argument("--banking77", help="Banking77's test.csv, for the 77-label set (or BANKING77_CSV)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every teacher")
    args = parser.parse_args(argv)
    if args.banking77:  # the child processes read it from the environment
        os.environ["BANKING77_CSV"] = str(Path(args.banking77).resolve())
    if args.one:
        print("RESULT " + json.dumps(one(json.loads(args.one))))
        return 0
    from distill.evaluation.metrics import markdown_table
    from distill.evaluation.timing import machine, write_bench

    modes = {"full": ["teacher.shortlist=off"], "default": ["teacher.shortlist=auto"], "ranker": ["teacher.shortlist=1"]}
    rows = []
    for size in map(int, args.sets.split(",")):
        results = {}
        for mode, extra in modes.items():
            spec = {"size": size, "texts": args.texts, "seed": args.seed, "teacher": args.teacher, "mode": mode,
                    "overrides": [*extra, *args.overrides]}
            done = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True,
                                  text=True)
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{size} labels, {mode}: failed\n{done.stderr[-3000:]}")
            results[mode] = json.loads(line[len("RESULT "):])
        full = results["full"]["pred"]
        for mode, r in results.items():
            r["agreement_with_full"] = float(np.mean([a == b for a, b in zip(r.pop("pred"), full)]))
            rows.append({"labels": size, "mode": mode, **r, "speedup_vs_full": results["full"]["seconds"] / r["seconds"]})
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "texts": args.texts, "teacher": args.teacher, "overrides": args.overrides}
    names = {"full": "full NLI teacher", "default": "default (shortlist auto)", "ranker": "ranker alone"}
    table = markdown_table(
        ["labels", "labeller", "texts/s", "pairs/s", "x full", "peak RSS", "accuracy (gold)", "agreement with full",
         "separation lift"],
        [[r["labels"], names[r["mode"]] + (f", k={r['k']}" if r["k"] else ""), f"{r['texts_per_s']:.1f}",
          f"{r['pairs_per_s']:.0f}" if r["pairs_per_s"] else "-", f"{r['speedup_vs_full']:.1f}x",
          f"{r['peak_rss_mb']:.0f} MB", r["accuracy"], r["agreement_with_full"],
          f"{r['lift']:.2f}" + (" (warned)" if r["warned"] else "")] for r in rows])
    m = meta["machine"]
    write_bench(args.out, {"_meta": meta, "rows": rows},
                f"{table}\n\n{args.texts} seeded texts a label set, teacher {args.teacher}, each labeller in its own "
                f"process (peak RSS is that process's), on {m['cpu_summary']}, {m['cores']} cores, {meta['date']}. "
                f"The ranker alone is the shortlist's ranker giving its own labels.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
