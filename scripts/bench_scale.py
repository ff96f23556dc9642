"""Benchmark stage=label on the local engine against Ray with 1 and 2 workers, on this machine.

    python scripts/bench_scale.py                      # 512 SST-2 pool texts, the DeBERTa NLI teacher
    python scripts/bench_scale.py --n-texts 2000 teacher=mpnet

Each contender labels the same pool from nothing (its own empty outputs folder, so nothing is cached) through
`distill.stages.label.run`, as `python -m distill stage=label` would. Reported per contender:

    contenders      local (this process, torch on every core); ray-1x2cpu (one actor with 2 CPUs);
                    ray-2x1cpu (two actors with 1 CPU each, one model copy each)
    wall s          the whole stage: reading the pool, starting Ray and its actors, loading the model(s),
                    labelling, writing the shards and the labels file
    texts/s         n_texts / wall s
    steady texts/s  texts labelled after every worker's first shard landed, over the time from then to the
                    last shard (start-up left out: what a long run approaches)

and whether every contender's labels equal the local engine's (argmax agreement, max |p - p_local|).
Writes outputs/bench/scale.json and a markdown table next to it (scale.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from distill.config import load_config
from distill.errors import DistillError
from distill.evaluation.metrics import markdown_table
from distill.evaluation.timing import machine, write_bench
from distill.stages import label

CONTENDERS = {
    "local": ["label.engine=local"],
    "ray-1x2cpu": ["label.engine=ray", "ray.num_workers=1", "ray.cpus_per_worker=2"],
    "ray-2x1cpu": ["label.engine=ray", "ray.num_workers=2", "ray.cpus_per_worker=1"],
}


def steady_rate(shards: list[Path], workers: int) -> float | None:
    """Texts per second from the moment every worker has finished its first shard to the last shard, from
    the files' times and sizes (the first `workers` shards carry the start-up and are left out)."""
    if len(shards) <= workers:
        return None
    stamps = sorted((p.stat().st_mtime, len(pd.read_parquet(p, columns=["id"]))) for p in shards)
    span = stamps[-1][0] - stamps[workers - 1][0]
    return sum(n for _, n in stamps[workers:]) / span if span > 0 else None


def run_contender(name: str, overrides: list[str], root: Path) -> tuple[dict, pd.DataFrame]:
    cfg = load_config([*overrides, f"paths.outputs={root / 'out'}"])
    start = time.perf_counter()
    result = label.run(cfg)
    wall = time.perf_counter() - start
    folder = Path(result["labels_path"]).parent
    frame = pd.read_parquet(result["labels_path"])
    row = {"n_texts": len(frame), "wall_s": round(wall, 2), "texts_per_s": round(len(frame) / wall, 2),
           "steady_texts_per_s": steady_rate(sorted((folder / "shards").glob("part-*.parquet")),
                                             cfg.ray.num_workers if cfg.label.engine.value == "ray" else 1),
           "teacher": cfg.teacher.name, "device": json.loads((folder / "meta.json").read_text())["teacher"].get("device")}
    logging.info("%s: %s", name, row)
    return row, frame


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=512, help="pool texts to label (data.pool_size)")
    parser.add_argument("--shard-size", type=int, default=64, help="label.shard_size: the unit of work an actor gets")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/scale.json"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. teacher=mpnet data=ag_news")
    args = parser.parse_args(argv)
    names = args.contenders.split(",")
    unknown = sorted(set(names) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contender(s) {unknown}; choose from {list(CONTENDERS)}")
    common = [f"data.pool_size={args.n_texts}", f"label.shard_size={args.shard_size}", *args.overrides]
    results, frames = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for i, name in enumerate(names):
            results[name], frames[name] = run_contender(name, [*common, *CONTENDERS[name]], Path(tmp) / str(i))
    reference = frames.get("local")
    for name, row in results.items():
        if reference is not None:
            probs = [c for c in reference.columns if c.startswith("prob_")]
            row["agreement_with_local"] = float((frames[name]["label"] == reference["label"]).mean())
            row["max_abs_diff_vs_local"] = float(np.abs(frames[name][probs].to_numpy()
                                                        - reference[probs].to_numpy()).max())
        if "local" in results:
            row["speedup_vs_local"] = round(row["texts_per_s"] / results["local"]["texts_per_s"], 3)
    results["_meta"] = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                        "n_texts": args.n_texts, "shard_size": args.shard_size, "overrides": common,
                        "contenders": {name: CONTENDERS[name] for name in names}}
    header = ["engine", "texts", "wall s", "texts/s", "steady texts/s", "vs local", "agreement w/ local",
              "max abs diff vs local"]
    rows = [[name, r["n_texts"], r["wall_s"], r["texts_per_s"], r["steady_texts_per_s"], r.get("speedup_vs_local"),
             r.get("agreement_with_local"), r.get("max_abs_diff_vs_local")]
            for name, r in results.items() if not name.startswith("_")]
    first = results[names[0]]
    report = (f"{markdown_table(header, rows)}\n\nstage=label of {args.n_texts} pool texts by {first['teacher']} "
              f"({first['device']}), shards of {args.shard_size}, on {results['_meta']['machine']['cpu_summary']} "
              f"({results['_meta']['machine']['cores']} cores). Wall time includes starting Ray and loading the "
              f"model in every actor.\n")
    write_bench(args.out, results, report)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        main()
    except DistillError as e:
        sys.exit(f"bench_scale: error: {e}")
