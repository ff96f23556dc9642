#!/usr/bin/env python
"""int8 students against their float32 selves, on this CPU: which weight quantization keeps the labels.

For each data set the default student (MiniLM, soft labels, the data set's experiment preset when there is
one) is labelled and trained through the stages (cached under outputs/), exported to ONNX, and quantized
dynamically three ways: int8 weights (8-bit, onnxruntime's default), int8 weights reduced to 7 bits
(`reduce_range`) and uint8 weights. Each graph scores the held-out texts against gold and against the
torch float32 student. On x86 CPUs without VNNI, u8 x s8 products are summed in 16 bits and can saturate;
the table says what that costs here. Writes outputs/bench/int8.json and int8.md (with the CPU's features).

    python scripts/bench_int8.py                                   # sst2, ag_news, sms_spam, tweeteval_emotion
    python scripts/bench_int8.py --datasets sst2 train.epochs=1
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from distill import artifacts
from distill.config import data_preset, load_config
from distill.data import load_heldout
from distill.evaluation.metrics import label_ids, markdown_table, score
from distill.evaluation.timing import machine, throughput, write_bench
from distill.stages import run_stage
from distill.students.load import load_classifier
from distill.students.onnx import ONNXClassifier, export, quiet_root_logger

DATASETS = "sst2,ag_news,sms_spam,tweeteval_emotion"
SCHEMES = {  # name -> quantize_dynamic settings
    "int8 (8-bit weights)": {"weight_type": "QInt8", "reduce_range": False},
    "int8 (7-bit weights)": {"weight_type": "QInt8", "reduce_range": True},
    "uint8 weights": {"weight_type": "QUInt8", "reduce_range": False},
}


def student_for(data: str, overrides: list[str]):
    """(config, student folder): the data set's preset labelled and trained through the stages."""
    preset = data_preset(data)
    cfg = load_config([preset, "train.device=cpu", *overrides])
    for stage in ("label", "train"):
        cfg.stage = stage
        run_stage(cfg)
    return cfg, artifacts.student_dir(cfg)


def quantized(fp32: Path, out: Path, weight_type: str, reduce_range: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_root_logger():
        quantize_dynamic(str(fp32), str(out), weight_type=getattr(QuantType, weight_type), per_channel=True,
                         reduce_range=reduce_range)
    return out


def row(name: str, probs: np.ndarray, gold: np.ndarray, reference: np.ndarray, predict, texts) -> dict:
    speed = throughput(predict, texts, [32], n_texts=256, warmup_batches=1, desc=name, repeats=2)[32]
    return {"model": name, **score(probs, gold, probs.shape[1]),
            "agreement_with_fp32": float((probs.argmax(1) == reference.argmax(1)).mean()),
            "max_abs_diff_vs_fp32": float(np.abs(probs - reference).max()),
            "samples_per_s_32": round(speed["samples_per_s"], 1)}


def bench(data: str, overrides: list[str]) -> dict:
    cfg, folder = student_for(data, overrides)
    held = load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))
    gold = label_ids(held.gold, list(cfg.data.labels))
    torch_student = load_classifier(folder, device="cpu")
    reference = torch_student.predict_proba(held.texts, batch_size=64)
    rows = [row("torch float32", reference, gold, reference,
                lambda t, bs: torch_student.predict_proba(t, batch_size=bs), held.texts)]
    fp32 = export(folder)
    graphs = {"onnx float32": fp32}
    scratch = Path(tempfile.mkdtemp(prefix="int8-", dir=fp32.parent))
    try:
        for name, scheme in SCHEMES.items():
            graphs[name] = quantized(fp32, scratch / f"{len(graphs)}.onnx", **scheme)
        for name, graph in graphs.items():
            model = ONNXClassifier(graph, folder)
            probs = model.predict_proba(held.texts, batch_size=64)
            rows.append(row(name, probs, gold, reference, lambda t, bs: model.predict_proba(t, batch_size=bs),
                            held.texts))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logging.info("%s: %s", data, rows)
    return {"data": data, "student": str(folder), "n_heldout": len(held.texts), "rows": rows}


def render(results: list[dict], meta: dict) -> str:
    header = ["data", "student graph", "accuracy", "macro-F1", "agreement with fp32", "max |diff| vs fp32",
              "samples/s @32"]
    rows = [[r["data"], x["model"], x["accuracy"], x["macro_f1"], x["agreement_with_fp32"],
             x["max_abs_diff_vs_fp32"], x["samples_per_s_32"]] for r in results for x in r["rows"]]
    m = meta["machine"]
    return (markdown_table(header, rows) + "\n\nHeld-out texts: "
            + ", ".join(f"{r['data']} {r['n_heldout']}" for r in results)
            + f". On {m['cpu_summary']}, {m['cores']} cores, {meta['date']}.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--out", default="outputs/bench/int8.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every data set, e.g. train.epochs=1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results = [bench(data, args.overrides) for data in args.datasets.split(",")]
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "overrides": args.overrides, "schemes": SCHEMES}
    write_bench(args.out, {"_meta": meta, "results": results}, render(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
