#!/usr/bin/env python
"""Accuracy and speed of every teacher, with and without a prompt ensemble, on held-out texts.

Each variant labels the data set's held-out split through the label stage itself (so results are
cached and resumable under outputs/labels/) and is scored against gold. Writes
outputs/bench/teachers.json and teachers.md, and prints the table.

    python scripts/compare_teachers.py                      # sst2 + ag_news, every teacher
    python scripts/compare_teachers.py --datasets sst2 --teachers deberta-v3-nli,mpnet
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from distill.config import load_config
from distill.data import load_heldout
from distill.evaluation.metrics import label_ids, markdown_table, score
from distill.evaluation.timing import machine
from distill.labelling import label_split
from distill.labelstore import read_labels

TEACHERS = ["deberta-v3-nli", "deberta-v3-nli-onnx", "mpnet", "minilm-embed"]
ENSEMBLES = {  # several phrasings of the hypothesis; scores are averaged over them
    "sst2": ["This example is {}.", "The sentiment of this review is {}.", "This movie review is {}."],
    "ag_news": ["This example is {}.", "This news article is about {}.", "The topic of this text is {}."],
}
DATA_OVERRIDES = {"ag_news": ["data.heldout_size=1000"]}


def quote(templates: list[str]) -> str:
    return "teacher.templates=[" + ",".join(json.dumps(t) for t in templates) + "]"


def run_variant(data: str, teacher: str, ensemble: bool, extra: list[str]) -> dict:
    overrides = [f"data={data}", f"teacher={teacher}", *DATA_OVERRIDES.get(data, []), *extra]
    if ensemble:
        overrides.append(quote(ENSEMBLES[data]))
    cfg = load_config(overrides)
    held = load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))
    start = time.perf_counter()
    result = label_split(cfg, "heldout")
    seconds = time.perf_counter() - start
    probs = read_labels(result.path, list(cfg.data.labels))[1]
    gold = label_ids(held.gold, list(cfg.data.labels))
    return {"data": data, "teacher": teacher, "ensemble": ensemble, "n_texts": len(held.texts),
            "n_hypotheses": len(ENSEMBLES[data]) if ensemble else 1, **score(probs, gold, probs.shape[1]),
            "texts_per_s": result.meta.get("texts_per_s"), "cached": result.cached, "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="sst2,ag_news")
    parser.add_argument("--teachers", default=",".join(TEACHERS))
    parser.add_argument("--no-ensemble", action="store_true", help="single template only")
    parser.add_argument("--out", default="outputs/bench/teachers.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. teacher.batch_size=32")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rows = []
    for data in args.datasets.split(","):
        for teacher in args.teachers.split(","):
            for ensemble in ([False] if args.no_ensemble else [False, True]):
                rows.append(run_variant(data, teacher, ensemble, args.overrides))
                logging.info("%s", rows[-1])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine()}
    out.write_text(json.dumps({"_meta": meta, "rows": rows}, indent=2) + "\n")
    table = markdown_table(["data", "teacher", "prompts", "texts", "accuracy", "macro-F1", "texts/s"],
                           [[r["data"], r["teacher"], r["n_hypotheses"], r["n_texts"], r["accuracy"],
                             r["macro_f1"], r["texts_per_s"]] for r in rows])
    table += f"\n\nOn {meta['machine']['cpu_summary']}, {meta['machine']['cores']} cores.\n"
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
