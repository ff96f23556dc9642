"""Benchmark the label engine: distill's NLITeacher vs transformers' zero-shot pipeline vs txtai Labels.

One run, same NLI model, device and held-out texts for all; distill labels as `stage=label` does with the
same overrides (`label.workers=2`: in two worker processes of one thread each), in the precision it picks
(`teacher.dtype`). The pipeline (batch 32) and txtai's `Labels` run at their own defaults, as their users
run them: float32. Where distill's precision is not float32 (bf16 on GPUs and on CPUs where it is fast),
`pipeline_matched` is the same pipeline given distill's precision too, for a same-precision comparison
(its speedup is reported beside the others, `speedup_vs_pipeline_matched`). Each is
timed on the whole list after an untimed warm-up on the longest and shortest texts (its seconds, with
building the contender, are reported as `setup_s`: a compiled teacher compiles there), compared with the pipeline (argmax
agreement, max |dp|) and scored against gold (for information). Positional arguments are Hydra overrides for every data set:

    python scripts/bench_label.py --datasets sst2,ag_news --out outputs/bench/label.json teacher.dtype=float32

`teacher.compile=true` times the compiled teacher (bf16 on AMX; stage=label compiles under `auto` only
labellings of distill.runtime.compiled.MIN_PAIRS pairs or more, and these held-out sets are smaller).

Padding efficiency (real tokens / padded tokens) follows how each contender batches its N x K pairs:
distill deals the texts out to its `label.workers` processes, and each sorts its pairs longest first
into batches of `teacher.batch_size` pairs (and `teacher.max_tokens` padded tokens; both by device when
null: 64 capped at 1,024 tokens on a CPU, 512 capped at 32,768 on a GPU), replayed here with the teacher's own `encode`
and `batches`; the pipeline takes
them in input order, 32 a batch; txtai's Labels passes no batch_size, so the pipeline forwards one pair
at a time. Peak RSS is VmHWM, reset before each contender (Linux only;
elsewhere getrusage's lifetime peak, which later contenders inherit), plus each label worker process's own.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import inspect
import logging
import os
import resource
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm

from distill.config import load_config
from distill.data import load_heldout
from distill.errors import DistillError
from distill.evaluation.metrics import label_ids, markdown_table
from distill.evaluation.timing import machine, write_bench
from distill.labelling import local_teacher
from distill.runtime.device import batches, resolve_device, resolve_dtype, teacher_batch
from distill.teachers import build_teacher
from distill.teachers.processes import deal

log = logging.getLogger("bench_label")

CONTENDERS = ("distill", "pipeline", "pipeline_matched", "txtai")
HELDOUT_SIZE = {"sst2": None, "ag_news": 1000}  # None: the whole held-out set (sst2: 872 dev sentences)
PIPELINE_BATCH = 32  # pairs a forward pass, as the pipeline counts them
WARMUP_TEXTS = 4


# --- memory and padding -------------------------------------------------------------------------------

def reset_peak_rss() -> bool:
    """Free what the last contender left and reset the RSS high-water mark; False where it cannot be reset."""
    gc.collect()
    try:  # glibc keeps freed small blocks in the heap; hand them back so they do not count twice
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """RSS high-water mark in MiB: VmHWM on Linux, else ru_maxrss (kB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def padded(lengths, batch_size: int, order=None, max_tokens: int | None = None) -> tuple[int, int]:
    """(real tokens, padded tokens) when pair `lengths` are forwarded in `order`, cut as the NLI teacher
    cuts its batches (`max_tokens` needs longest-first order), each padded to its longest."""
    lengths = np.asarray(lengths)
    order = np.arange(len(lengths)) if order is None else np.asarray(order)
    cut = [lengths[rows] for rows in batches(order, lengths, batch_size, max_tokens)]
    return int(sum(b.sum() for b in cut)), int(sum(b.max() * len(b) for b in cut))


def padding_efficiency(lengths, batch_size: int, order=None) -> float:
    """Real tokens / padded tokens when `lengths` are forwarded in `order`, batches padded to their longest."""
    real, total = padded(lengths, batch_size, order)
    return real / total


def pair_lengths(tokenizer, texts: list[str], hypotheses: list[str]) -> np.ndarray:
    """Token count of every (text, hypothesis) pair, text-major, truncating only the text (as the pipeline)."""
    premises = [t for t in texts for _ in hypotheses]
    ids = tokenizer(premises, hypotheses * len(texts), truncation="only_first")["input_ids"]
    return np.array([len(x) for x in ids])


def to_probs(ranked: list[list[tuple[str | int, float]]], labels: list[str]) -> np.ndarray:
    """Score-sorted (label or label index, score) rows -> [N, K] probabilities in `labels` order."""
    probs = np.zeros((len(ranked), len(labels)), dtype=np.float32)
    for row, pairs in zip(probs, ranked):
        for label, score in pairs:
            row[label if isinstance(label, int) else labels.index(label)] = score
    return probs


# --- contenders: each returns (predict(texts) -> [N, K] probs, padding(texts) -> efficiency, info) ------

def make_distill(cfg, labels, template, device, dtype):
    teacher = local_teacher(cfg)  # `label.workers` processes on a CPU, as stage=label runs it
    workers = getattr(teacher, "workers", 1)
    plain = None if workers > 1 else teacher

    def padding(texts):
        # Replays NLITeacher._pair_logits in each worker: longest pair first (stable), in the teacher's own
        # batches. Built after the timing, so a tokenizer here does not count in peak RSS.
        nonlocal plain
        plain = plain or build_teacher(cfg.teacher, labels)
        lengths = np.array([len(ids) for ids in plain.encode(texts)["input_ids"]]).reshape(len(texts), -1)
        parts = [lengths[rows].ravel() for rows in deal(texts, workers)]
        real, total = np.sum([padded(part, plain.batch_size, np.argsort(-part, kind="stable"), plain.max_tokens)
                              for part in parts], axis=0)
        return float(real / total)

    described = teacher.describe()  # the dtype it really runs in (bf16 when compiled on an AMX CPU)
    batch_pairs, max_tokens = teacher_batch(cfg.teacher.batch_size, cfg.teacher.max_tokens, device)
    info = {"template": cfg.teacher.template, "batch_pairs": batch_pairs, "max_tokens": max_tokens,
            "recheck_margin": cfg.teacher.recheck_margin if described.get("dtype", "float32") != "float32" else None,
            "order": "longest first",
            "dtype": described.get("dtype", dtype), "compiled": described.get("compiled", False),
            "processes": workers, "threads_per_process": getattr(teacher, "threads",
                                                                                 torch.get_num_threads())}
    return teacher.predict_proba, padding, info


def make_pipeline(cfg, labels, template, device, dtype):
    """dtype None: the pipeline's own default precision (float32 for a float32 checkpoint)."""
    clf = transformers.pipeline("zero-shot-classification", model=model_folder(cfg), device=device,
                                **({} if dtype is None else {"dtype": dtype}))

    def predict(texts):
        out = clf(texts, candidate_labels=labels, hypothesis_template=template, batch_size=PIPELINE_BATCH)
        return to_probs([list(zip(o["labels"], o["scores"])) for o in out], labels)

    def padding(texts):
        hypotheses = [template.format(label) for label in labels]
        return padding_efficiency(pair_lengths(clf.tokenizer, texts, hypotheses), PIPELINE_BATCH)

    return predict, padding, {"template": template, "batch_pairs": PIPELINE_BATCH, "order": "input",
                              "dtype": clf.model.dtype}


def make_txtai(cfg, labels, template, device, dtype):
    from txtai.pipeline import Labels

    # Its defaults for everything about inference (precision included, unless dtype is given); only the device
    # is pinned to distill's.
    model = Labels(path=model_folder(cfg), gpu=device, **({} if dtype is None else {"dtype": dtype}))
    clf = model.pipeline
    # Labels never passes a template, so the pipeline's own default applies; read it rather than assume it.
    own_template = inspect.signature(clf.preprocess).parameters["hypothesis_template"].default
    batch = clf._batch_size or 1  # Labels passes no batch_size: the pipeline forwards one pair at a time

    def predict(texts):
        return to_probs(model(texts, labels), labels)  # [(index into labels, score)], softmax over labels

    def padding(texts):
        hypotheses = [own_template.format(label) for label in labels]
        return padding_efficiency(pair_lengths(clf.tokenizer, texts, hypotheses), batch)

    return predict, padding, {"template": own_template, "batch_pairs": batch, "order": "input",
                              "dtype": clf.model.dtype}


MAKERS = {"distill": make_distill, "pipeline": make_pipeline, "pipeline_matched": make_pipeline, "txtai": make_txtai}
AT_DEFAULTS = {"pipeline", "txtai"}  # run at their own default precision; the others in distill's


def model_folder(cfg) -> str:
    """teacher.model as a folder the pipeline and txtai load directly (they do not expand `~`)."""
    return os.path.expanduser(cfg.teacher.model)


# --- one data set -------------------------------------------------------------------------------------

def warmup_batches(texts: list[str]) -> list[list[str]]:
    """The longest texts, then the shortest: a compiled teacher compiles for the length ranges it meets."""
    by_length = sorted(texts, key=len)
    return [by_length[-WARMUP_TEXTS:], by_length[:WARMUP_TEXTS]]


def run_contender(name, cfg, labels, texts, gold, device, dtype) -> tuple[dict, np.ndarray, dict]:
    """Build, warm up, time one contender on all texts; its metrics (without the pipeline comparison)."""
    resettable = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    own = None if name in AT_DEFAULTS else dtype
    predict, padding, info = MAKERS[name](cfg, labels, cfg.teacher.template, device, own)
    owner = getattr(predict, "__self__", None)  # a ProcessPoolTeacher: its workers' memory counts too
    for batch in warmup_batches(texts):
        predict(batch)
    setup = time.perf_counter() - start
    rechecked = getattr(owner, "rechecked", None)  # distill in reduced precision: near ties redone in float32
    start = time.perf_counter()
    probs = predict(texts)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb() + sum(getattr(owner, "peak_rss_mb", list)())
    getattr(owner, "close", lambda: None)()
    result = {"texts_per_s": len(texts) / seconds, "seconds": seconds, "setup_s": setup,
              "padding_efficiency": padding(texts),
              "peak_rss_mb": peak, "accuracy": float((probs.argmax(1) == gold).mean())}
    if rechecked is not None:
        result["rechecked_texts"] = owner.rechecked - rechecked
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    info.update(dtype=str(info["dtype"]).removeprefix("torch."),
                rss="VmHWM, reset per contender" if resettable else "ru_maxrss, process-lifetime peak")
    return result, probs, info


def bench_dataset(name: str, contenders: list[str], n_texts: int | None, overrides: list[str], bar):
    """(the data set's JSON entry, the settings each contender ran with)."""
    cap = n_texts.get(name) if isinstance(n_texts, dict) else n_texts
    size = min(filter(None, [HELDOUT_SIZE.get(name), cap]), default=None)
    cfg = load_config([f"data={name}", "teacher=deberta-v3-nli", f"data.heldout_size={size or 'null'}", *overrides])
    labels = list(cfg.data.labels)
    heldout = load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))
    texts, gold = heldout.texts, label_ids(heldout.gold, labels)
    device = resolve_device(cfg.teacher.device)
    dtype = resolve_dtype(cfg.teacher.dtype, device)
    results, probs, infos = {}, {}, {}
    for contender in contenders:
        bar.set_postfix_str(f"{name}/{contender}")
        if contender == "pipeline_matched" and dtype == torch.float32:
            log.info("%s/pipeline_matched: distill's precision here is float32, the pipeline's own: not run twice",
                     name)
            bar.update()
            continue
        results[contender], probs[contender], infos[contender] = run_contender(
            contender, cfg, labels, texts, gold, device, dtype)
        gc.collect()
        r = results[contender]
        log.info("%s/%s: %d texts in %.1f s (%.1f texts/s), peak RSS %.0f MiB", name, contender, len(texts),
                 r["seconds"], r["texts_per_s"], r["peak_rss_mb"])
        bar.update()
    reference = fp32_reference(cfg, labels, texts, device, probs.get("pipeline"), infos.get("pipeline"))
    for contender, result in results.items():
        compare(result, probs[contender], probs.get("pipeline"), "pipeline")
        compare(result, probs[contender], reference, "fp32_pipeline")
    speed = {c: r["texts_per_s"] for c, r in results.items()}
    distill = results.get("distill", {})
    entry = {"n_texts": len(texts), "n_labels": len(labels), "contenders": results,
             "agreement_with_pipeline": distill.get("agreement_with_pipeline"),
             "agreement_with_fp32_pipeline": distill.get("agreement_with_fp32_pipeline"),
             "speedup_vs_pipeline": speedup(speed, "pipeline"), "speedup_vs_txtai": speedup(speed, "txtai"),
             "speedup_vs_pipeline_matched": speedup(speed, "pipeline_matched")}
    return entry, {"model": model_folder(cfg), "device": str(device), "dtype": str(dtype).removeprefix("torch."),
                   "contenders": infos}


def fp32_reference(cfg, labels, texts, device, pipeline_probs, pipeline_info) -> np.ndarray | None:
    """The float32 pipeline's probabilities, which reduced precision must agree with: the pipeline
    contender's own where it ran in float32, else an untimed float32 pipeline run (None without a pipeline)."""
    if pipeline_probs is None or pipeline_info["dtype"] == "float32":  # run_contender wrote it without "torch."
        return pipeline_probs
    log.info("the pipeline ran in %s: running it once more in float32 as the reference", pipeline_info["dtype"])
    predict, _, _ = make_pipeline(cfg, labels, cfg.teacher.template, device, torch.float32)
    probs = predict(texts)
    del predict
    gc.collect()
    return probs


def compare(result: dict, ours: np.ndarray, reference: np.ndarray | None, name: str) -> None:
    """Argmax agreement and max |dp| of a contender's probabilities against a reference's."""
    same = reference is not None and ours.shape == reference.shape
    result[f"agreement_with_{name}"] = float((ours.argmax(1) == reference.argmax(1)).mean()) if same else None
    result[f"max_abs_diff_vs_{name}"] = float(np.abs(ours - reference).max()) if same else None


def speedup(speed: dict, other: str) -> float | None:
    return speed["distill"] / speed[other] if "distill" in speed and other in speed else None


# --- report -------------------------------------------------------------------------------------------

def table(results: dict) -> str:
    runs = [(name, c, r) for name, entry in results.items() if not name.startswith("_")
            for c, r in entry["contenders"].items()]
    gpu = any("peak_gpu_mb" in r for _, _, r in runs)  # on a GPU: its peak allocated memory beside the host's RSS
    header = ["data set", "contender", "texts/s", "seconds", "setup s", "padding eff.", "peak RSS MiB",
              *(["peak GPU MiB"] if gpu else []), "accuracy", "agreement w/ pipeline", "max abs diff vs pipeline",
              "agreement w/ fp32 pipeline", "texts rechecked in fp32"]
    rows = [[name, c, r["texts_per_s"], r["seconds"], r.get("setup_s"), r["padding_efficiency"], r["peak_rss_mb"],
             *([r.get("peak_gpu_mb")] if gpu else []), r["accuracy"], r["agreement_with_pipeline"],
             r["max_abs_diff_vs_pipeline"], r["agreement_with_fp32_pipeline"], r.get("rechecked_texts")]
            for name, c, r in runs]
    return markdown_table(header, rows)


def caps(value: str):
    """`N` (every data set) or `name=N,name=N` (per data set)."""
    if "=" not in value:
        return int(value)
    return {name: int(n) for name, n in (part.split("=") for part in value.split(","))}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="sst2,ag_news", help="comma-separated conf/data presets")
    parser.add_argument("--n-texts", type=caps, default=None,
                        help="cap on held-out texts: N for every data set, or per set: ag_news=300,sst2=500")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset of the default")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/label.json"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. teacher.dtype=float32")
    args = parser.parse_args(argv)
    args.datasets, args.contenders = args.datasets.split(","), args.contenders.split(",")
    unknown = sorted(set(args.contenders) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, write `--out` (JSON) and a markdown table next to it; return the JSON."""
    args = parse_args(argv)
    if "txtai" in args.contenders:
        import txtai.pipeline  # noqa: F401  imported before the first reset, as torch and transformers are
    results, settings = {}, {}
    with tqdm(total=len(args.datasets) * len(args.contenders), desc="bench label", unit="run") as bar:
        for name in args.datasets:
            results[name], settings[name] = bench_dataset(name, args.contenders, args.n_texts, args.overrides,
                                                          bar)
    first = next(iter(settings.values()))
    results["_meta"] = {
        "machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "txtai": version("txtai")},
        "model": first["model"], "device": first["device"], "dtype": first["dtype"], "warmup_texts": WARMUP_TEXTS,
        "overrides": args.overrides, "contenders": {name: s["contenders"] for name, s in settings.items()}}
    how = "; ".join(f"{c}: template '{i['template']}', {i['batch_pairs']} pair(s) a batch in {i['order']} order, "
                    f"{i['dtype']}" for c, i in first["contenders"].items())
    where = results["_meta"]["machine"].get("gpu") or results["_meta"]["machine"]["cpu_summary"]
    report = (f"{table(results)}\n\nModel {first['model']} on {where} ({first['device']}). {how}. Peak RSS: {next(iter(first['contenders'].values()))['rss']}.\n")
    write_bench(args.out, results, report)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)  # txtai imports faiss, which logs its CPU probing
    try:
        main()
    except DistillError as e:
        sys.exit(f"bench_label: error: {e}")
