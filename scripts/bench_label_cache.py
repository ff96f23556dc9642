#!/usr/bin/env python
"""What the per-text label cache saves when a labelled file grows (issue 31).

A user's file of `--rows` texts (the first rows of SST-2's train split, as `data=file` reads any file) is labelled
with `stage=label`; then `--grow` more rows are appended to the file and the same command runs again: only the
new texts should reach the teacher. The grown file is then labelled from scratch (label.cache=false, another
outputs folder) and the two label files compared row for row. Writes outputs/bench/label_cache.{json,md}.

    python scripts/bench_label_cache.py                       # 10,000 rows + 10%, the deberta-v3-nli teacher
    python scripts/bench_label_cache.py --rows 500 teacher=deberta-v3-nli label.workers=2
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from distill.config import load_config
from distill.evaluation.metrics import markdown_table
from distill.evaluation.timing import machine, write_bench
from distill.stages import run_stage

SHARED = Path(os.environ.get("DISTILL_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def label(path: Path, outputs: Path, extra: list[str]) -> tuple[dict, float]:
    cfg = load_config(["data=file", f"data.pool.path={path}", "data.text_columns=[sentence]",
                       "data.labels=[negative,positive]", f"paths.outputs={outputs}", "stage=label", *extra])
    start = time.perf_counter()
    result = run_stage(cfg)
    return result, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--grow", type=float, default=0.10, help="rows appended, as a share of --rows")
    parser.add_argument("--work", default="outputs/bench/label_cache_work")
    parser.add_argument("--out", default="outputs/bench/label_cache.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (default teacher: the preset's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    source = SHARED / "data" / "sst2" / "train.tsv"
    if not source.exists():
        sys.exit(f"needs {source} (the shared data); set DISTILL_SHARED to where it is")
    texts = pd.read_csv(source, sep="\t", quoting=3)["sentence"].dropna().astype(str)
    texts = texts.drop_duplicates().reset_index(drop=True)
    grow = int(round(args.rows * args.grow))
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path = work / "texts.csv"
    overrides = ["teacher=deberta-v3-nli", *args.overrides] if not any(
        o.startswith("teacher=") for o in args.overrides) else list(args.overrides)

    texts[:args.rows].to_frame().to_csv(path, index=False)
    first, first_s = label(path, work / "out", overrides)
    again, again_s = label(path, work / "out", overrides)  # the same file: the label file's own cache hit
    texts[:args.rows + grow].to_frame().to_csv(path, index=False)  # the file grows by `grow` rows
    grown, grown_s = label(path, work / "out", overrides)
    fresh, fresh_s = label(path, work / "fresh", [*overrides, "label.cache=false"])

    a, b = pd.read_parquet(grown["labels_path"]), pd.read_parquet(fresh["labels_path"])
    probs = [c for c in a.columns if c.startswith("prob_")]
    row = {
        "rows": args.rows, "appended": grow, "teacher": overrides,
        "first_s": first_s, "first_texts_per_s": first["texts_per_s"],
        "same_file_again_s": again_s,
        "grown_s": grown_s, "grown_from_cache": grown["n_from_cache"],
        "grown_labelled": grown["n_texts"] - grown["n_from_cache"],
        "grown_share_of_first": grown_s / first_s,
        "fresh_grown_s": fresh_s,
        "same_texts_in_order": bool(a["text"].equals(b["text"])),
        "same_labels": float((a["label"] == b["label"]).mean()),
        "max_abs_prob_diff": float(np.abs(a[probs].to_numpy() - b[probs].to_numpy()).max()),
    }
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "overrides": overrides}
    table = markdown_table(
        ["rows", "first labelling", "same file again", f"+{grow} rows appended", "share of the first",
         "texts from the cache", "fresh labelling of the grown file", "labels equal to the fresh ones",
         "max |dp|"],
        [[row["rows"], f"{first_s:.1f} s", f"{again_s:.1f} s", f"{grown_s:.1f} s",
          f"{100 * row['grown_share_of_first']:.1f}%", row["grown_from_cache"], f"{fresh_s:.1f} s",
          f"{100 * row['same_labels']:.2f}%", f"{row['max_abs_prob_diff']:.2g}"]])
    m = meta["machine"]
    text = (f"{table}\n\nWall time of `stage=label` (the teacher loaded in each run) on {m['cpu_summary']}, "
            f"{m['cores']} cores, {meta['date']}; overrides {' '.join(overrides)}.\n")
    write_bench(args.out, {"_meta": meta, "rows": [row]}, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
