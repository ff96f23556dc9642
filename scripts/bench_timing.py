#!/usr/bin/env python
"""How steady eval's speed-ups are: the same teacher and students timed again and again, with each timing setting.

eval times every model on `eval.bench_texts` texts at each batch size, `eval.repeats` passes (the fastest
counts) within `eval.bench_seconds` a model and batch size. This runs stage=all once (so the student exists),
then stage=eval `--runs` times with each setting in `--settings`, and reports, per setting, the lowest and
highest samples/s of the teacher and the speed-up of each student form at batch 32, and how long an eval took.
A setting whose lowest and highest speed-up are far apart gives a user a number they cannot trust.
Writes outputs/bench/timing.json and timing.md.

    python scripts/bench_timing.py                                    # SST-2, the default student
    python scripts/bench_timing.py --runs 2 --settings "eval.repeats=3;eval.repeats=20,eval.bench_seconds=10"
"""
from __future__ import annotations

import argparse
import datetime
import logging
import sys
import time
from pathlib import Path

from distill.config import data_preset, load_config
from distill.evaluation.metrics import markdown_table
from distill.evaluation.timing import machine, write_bench
from distill.stages import run_stage

SETTINGS = "eval.repeats=3,eval.bench_seconds=30;eval.repeats=20,eval.bench_seconds=10"


def config(data: str, extra: list[str], stage: str):
    preset = data_preset(data)
    cfg = load_config([preset, *extra])
    cfg.stage = stage
    return cfg


def one_eval(data: str, extra: list[str]) -> dict:
    start = time.perf_counter()
    models = run_stage(config(data, extra, "eval"))["models"]
    seconds = time.perf_counter() - start
    teacher = next(m for m in models if m["role"] == "teacher")
    return {"seconds": seconds, "teacher_samples_per_s_32": teacher["samples_per_s"]["32"],
            "speedup_32": {m["name"]: (m.get("speedup_vs_teacher") or {}).get("32")
                           for m in models if m["role"] == "student"}}


def spread(values: list[float], fmt: str) -> str:
    return (fmt.format(min(values)) if len(values) == 1 else
            f"{fmt.format(min(values))} to {fmt.format(max(values))} ({max(values) / min(values):.2f}:1)")


def render(rows: list[dict], meta: dict) -> str:
    text = ""
    if rows:
        students = list(rows[0]["runs"][0]["speedup_32"])
        table = [[r["setting"], len(r["runs"]), spread([x["teacher_samples_per_s_32"] for x in r["runs"]], "{:.1f}"),
                  *[spread([x["speedup_32"][s] for x in r["runs"]], "{:.1f}x") for s in students],
                  f"{sum(x['seconds'] for x in r['runs']) / len(r['runs']):.0f}"] for r in rows]
        text += markdown_table(["setting", "runs", "teacher samples/s @32 (lowest to highest)",
                                *[f"{s} speed-up @32" for s in students], "seconds an eval"], table) + "\n\n"
    m = meta["machine"]
    return (f"{text}{meta['data']}, batch sizes {meta['batch_sizes']}; on {m['cpu_summary']}, {m['cores']} cores, "
            f"{meta['date']}.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="sst2")
    parser.add_argument("--runs", type=int, default=3, help="evals a setting")
    parser.add_argument("--settings", default=SETTINGS, help="';'-separated settings, each ','-separated overrides")
    parser.add_argument("--out", default="outputs/bench/timing.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1 (evals a setting), got {args.runs}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    run_stage(config(args.data, args.overrides, "all"))  # labels and student, cached by later runs
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "data": args.data, "overrides": args.overrides,
            "batch_sizes": list(config(args.data, args.overrides, "eval").eval.batch_sizes)}
    rows = []
    for setting in args.settings.split(";"):
        extra = [*args.overrides, *filter(None, setting.split(","))]
        rows.append({"setting": setting or "defaults", "runs": [one_eval(args.data, extra) for _ in range(args.runs)]})
    write_bench(Path(args.out), {"_meta": meta, "rows": rows}, render(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
