"""Peak memory of the label stage against input size: it must stay flat, because the pool and the labels stream.

For each size N, N synthetic texts (5-60 words drawn from a fixed vocabulary, seeded) are written to a
`lines` file a block at a time, then labelled by `distill.stages.label.run` in a fresh subprocess, so that
its peak RSS (VmHWM, read as it ends) belongs to that size alone. The teacher is a tiny random NLI model
built like the test fixtures (tests/conftest.py), smaller still by default (hidden 16, 1 layer, pairs cut
at 64 tokens, 512 pairs a batch) so a million texts fit in half an hour on two cores: the point is the
engine's memory, not the model's.

    .venv/bin/python scripts/bench_memory.py --sizes 10000,100000,1000000

Writes outputs/bench/memory.json and outputs/bench/memory.md (also printed). The texts and labels are
written under outputs/bench/memory-work/ and removed after each size unless --keep.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny-model builder and its vocabulary live with the fixtures
from distill.runtime import cpuinfo  # noqa: E402

from conftest import WORDS, build_tiny_bert  # noqa: E402

BLOCK = 10_000  # texts generated and written at once
MAX_LENGTH = 64  # teacher.max_length: the texts are truncated as a real run would truncate them


def write_texts(path: Path, n: int, seed: int) -> None:
    """n lines of 5-60 random words, written a block at a time (the list of texts is never built)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n, BLOCK):
            lengths = rng.integers(5, 61, size=min(BLOCK, n - start))
            words = vocab[rng.integers(len(vocab), size=lengths.sum())]
            ends = np.cumsum(lengths)
            f.writelines(" ".join(words[end - length:end]) + "\n" for end, length in zip(ends, lengths))


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS: now, VmHWM: the peak so far) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def overrides(texts: Path, model: Path, outputs: Path, shard_size: int, batch_size: int) -> list[str]:
    return [
        "stage=label", "data.name=bench_memory", f"paths.data={texts.parent}", f"paths.outputs={outputs}",
        f"data.pool.path={texts}", "data.pool.format=lines", "data.pool_size=null", "data.label_column=null",
        # A held-out source of its own makes the whole file the pool; the label stage never reads it.
        f"data.heldout.path={texts}", "data.heldout.format=lines",
        "teacher.name=tiny-nli", f"teacher.model={model}", f"teacher.max_length={MAX_LENGTH}",
        f"teacher.batch_size={batch_size}", "teacher.device=cpu", f"label.shard_size={shard_size}",
    ]


def child(args) -> None:
    """Label one file in this process and print one JSON line: the timing and the memory."""
    from distill.config import load_config
    from distill.stages import label

    cfg = load_config(overrides(Path(args.texts), Path(args.model), Path(args.outputs), args.shard_size,
                                args.batch_size))
    rss_start = status_mb("VmRSS")  # torch, transformers and the config loaded; no text read yet
    start = time.perf_counter()
    result = label.run(cfg)
    seconds = time.perf_counter() - start
    print(json.dumps({"n_texts": result["n_texts"], "seconds": round(seconds, 1),
                      "texts_per_s": round(result["n_texts"] / seconds, 1),
                      "teacher_texts_per_s": result["texts_per_s"], "rss_start_mb": round(rss_start, 1),
                      "peak_rss_mb": round(status_mb("VmHWM"), 1)}))


def bench_size(n: int, args, model: Path, work: Path) -> dict:
    texts, outputs = work / f"texts-{n}.txt", work / f"outputs-{n}"
    start = time.perf_counter()
    write_texts(texts, n, args.seed)
    generated = time.perf_counter() - start
    cmd = [sys.executable, __file__, "--child", "--texts", str(texts), "--model", str(model),
           "--outputs", str(outputs), "--shard-size", str(args.shard_size), "--batch-size", str(args.batch_size)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    labels = next(outputs.glob("labels/bench_memory/*/labels.parquet"))
    result.update(file_mb=round(texts.stat().st_size / 2**20, 1), labels_mb=round(labels.stat().st_size / 2**20, 1),
                  generate_s=round(generated, 1))
    if not args.keep:
        texts.unlink()
        shutil.rmtree(outputs)
    return result


def markdown(report: dict) -> str:
    model = report["teacher"]
    lines = [
        f"Label stage (`distill.stages.label.run`), peak memory against input size ({report['machine']}).",
        "",
        f"Teacher: a tiny random NLI model (hidden {model['hidden_size']}, {model['layers']} layer(s), "
        f"teacher.max_length {MAX_LENGTH}, teacher.batch_size {report['batch_size']} pairs), small so that the "
        f"engine's memory shows, not the model's, and a million texts fit in half an hour on a few CPU cores. "
        f"label.shard_size {report['shard_size']} texts; texts of 5-60 words from a fixed vocabulary, one a "
        f"line (`lines` format). RSS at start: after imports and config, before any text is read; peak RSS: "
        f"VmHWM of the labelling process, a fresh process a size.",
        "",
        "| texts | file MB | labels MB | wall s | texts/s stage | texts/s teacher | RSS at start MB | peak RSS MB "
        "| peak - start MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['n_texts']:,} | {r['file_mb']} | {r['labels_mb']} | {r['seconds']} | "
                     f"{r['texts_per_s']:,.0f} | {r['teacher_texts_per_s']:,.0f} | {r['rss_start_mb']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['rss_start_mb']:.0f} |")
    lines += ["", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated numbers of texts")
    parser.add_argument("--shard-size", type=int, default=512, help="label.shard_size (the config default)")
    parser.add_argument("--batch-size", type=int, default=512, help="teacher.batch_size, in pairs")
    parser.add_argument("--hidden-size", type=int, default=16, help="of the tiny teacher (the fixtures use 32)")
    parser.add_argument("--layers", type=int, default=1, help="of the tiny teacher (the fixtures use 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench"))
    parser.add_argument("--keep", action="store_true", help="keep the generated texts and labels")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the labelling subprocess
    for hidden in ("--texts", "--model", "--outputs"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    out = Path(args.out)
    work = out / "memory-work"
    work.mkdir(parents=True, exist_ok=True)
    model = build_tiny_bert(work / "tiny-nli", {0: "entailment", 1: "not_entailment"}, seed=1,
                            hidden_size=args.hidden_size, layers=args.layers)
    config = json.loads((model / "config.json").read_text())
    report = {
        "machine": f"{cpuinfo.feature_summary()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "teacher": {"hidden_size": config["hidden_size"], "layers": config["num_hidden_layers"],
                    "max_length": MAX_LENGTH},
        "shard_size": args.shard_size, "batch_size": args.batch_size, "seed": args.seed,
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "results": [],
    }
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"labelling {n:,} texts ...", file=sys.stderr, flush=True)
        report["results"].append(bench_size(n, args, model, work))
        (out / "memory.json").write_text(json.dumps(report, indent=2) + "\n")  # after each size: a kill keeps some
        (out / "memory.md").write_text(markdown(report))
    if not args.keep:
        shutil.rmtree(work)
    print(markdown(report))


if __name__ == "__main__":
    main()
