#!/usr/bin/env python
"""Weak supervision against single teachers: held-out accuracy of every source, the vote, the learned label
model, and the student trained on the learned labels vs the student trained on the best single teacher.

For each data set: stage=weak (weak=<data>), then stage=train/eval with `weak` set (the combined labels),
then stage=train/eval with train.labels_path = the best teacher's pool labels (the same prompts it had as a
source). "Best" is by held-out accuracy, which favours the baseline. Writes outputs/bench/weak.{json,md}.

    python scripts/bench_weak.py                                   # sst2, ag_news, tweeteval_emotion
    python scripts/bench_weak.py --datasets sst2 --no-students data.pool_size=500
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from distill.config import load_config
from distill.evaluation.metrics import markdown_table
from distill.evaluation.timing import machine
from distill.stages import evaluate, train, weak

DATASETS = "sst2,ag_news,tweeteval_emotion"
CAPS = {"sst2": ["data.pool_size=1000"], "ag_news": ["data.pool_size=1000", "data.heldout_size=500"],
        "tweeteval_emotion": ["data.pool_size=1000", "data.heldout_size=600"]}
EVAL = ["eval.batch_sizes=[32]", "eval.bench_texts=64", "eval.warmup_batches=1", "eval.variants=[torch]"]
ROWS = ["deberta-v3-nli", "mpnet", "minilm-embed", "keywords (combined)", "majority_vote", "average", "dawid_skene"]


def student_accuracy(overrides: list[str]) -> float:
    cfg = load_config(overrides + EVAL)
    train.run(cfg)
    return next(m["accuracy"] for m in evaluate.run(cfg)["models"] if m["role"] == "student")


def bench(data: str, students: bool, extra: list[str]) -> dict:
    base = [f"data={data}", *CAPS.get(data, []), *extra]
    result = weak.run(load_config(base + [f"weak={data}"]))
    scores = {r["name"]: r for r in result["heldout"]}
    teachers = [r for r in result["heldout"] if r["kind"] == "teacher"]
    best = max(teachers, key=lambda r: r["accuracy"])
    out = {"data": data, "overrides": base, "heldout": result["heldout"], "best_teacher": best["name"],
           "weak_dir": result["weak_dir"]}
    if students:
        summary = json.loads((Path(result["weak_dir"]) / "summary.json").read_text())
        pool_labels = next(s["pool_labels"] for s in summary["sources"] if s["name"] == best["name"])
        out["student_weak"] = student_accuracy(base + [f"weak={data}"])
        out["student_best_teacher"] = student_accuracy(base + [f"teacher={best['name']}", f"train.labels_path={pool_labels}",
                                                              "eval.teacher=false"])
    out["scores"] = {name: scores[name]["accuracy"] for name in ROWS if name in scores}
    out["coverage"] = {name: scores[name]["coverage"] for name in ROWS if name in scores}
    return out


def render(results: list[dict]) -> str:
    header = ["held-out accuracy"] + [r["data"] for r in results]
    rows = []
    for name in ROWS:
        cells = []
        for r in results:
            acc, cov = r["scores"].get(name), r["coverage"].get(name)
            cells.append("-" if acc is None else f"{acc:.4f}" + (f" (covers {cov:.0%})" if cov < 1 else ""))
        rows.append([name, *cells])
    for key, name in (("student_best_teacher", "student (minilm) on the best single teacher"),
                      ("student_weak", "student (minilm) on dawid_skene labels")):
        rows.append([name] + [f"{r[key]:.4f}" if key in r else "-" for r in results])
    rows.append(["best single teacher"] + [r["best_teacher"] for r in results])
    return markdown_table(header, rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--no-students", action="store_true", help="label models only (no training)")
    parser.add_argument("--out", default="outputs/bench/weak.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out, results, meta = Path(args.out), [], {"machine": machine()}
    out.parent.mkdir(parents=True, exist_ok=True)
    # Label models for every data set first (cheap once the teachers have labelled), then the students.
    for data in args.datasets.split(","):
        results.append(bench(data, students=False, extra=args.overrides))
        out.write_text(json.dumps({"_meta": meta, "rows": results}, indent=2) + "\n")
    if not args.no_students:
        for i, r in enumerate(results):
            results[i] = bench(r["data"], students=True, extra=args.overrides)
            out.write_text(json.dumps({"_meta": meta, "rows": results}, indent=2) + "\n")
    table = render(results) + f"\nOn {meta['machine']['cpu_summary']}, {meta['machine']['cores']} cores.\n"
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
