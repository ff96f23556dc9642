"""The side-by-side comparison of teacher and students: one entry per model, the speed-ups over the
teacher from the same run, and the markdown table eval prints and writes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ..students.folder import folder_size_mb
from .metrics import full_report, markdown_table

WEIGHT_FILES = (".safetensors", ".bin", ".onnx", ".pt")


def weights_size_mb(ref: str) -> float | None:
    path = Path(os.path.expanduser(str(ref)))
    if not path.is_dir():
        return None  # a hub id: its size is not known here
    return folder_size_mb(path, [p.name for p in path.iterdir() if p.suffix in WEIGHT_FILES])


def measure(name: str, role: str, probs: np.ndarray, gold: np.ndarray, speed: dict, cfg: DictConfig,
            info: dict) -> dict:
    """One row of the comparison: quality against gold, and speed from `speed` (a throughput() result)."""
    entry = {"name": name, "role": role, **full_report(probs, gold, list(cfg.data.labels), cfg.data.ordinal),
             "samples_per_s": {str(bs): (round(r["samples_per_s"], 2) if r else None) for bs, r in speed.items()}}
    timed = [bs for bs, r in speed.items() if r]
    if timed:
        first = speed[min(timed)]
        entry["latency_ms"] = {"batch_size": min(timed), "p50": round(first["latency_ms_p50"], 2),
                               "p95": round(first["latency_ms_p95"], 2)}
    return {**entry, **info}


def speedups(entries: list[dict], batch_sizes: list[int]) -> None:
    """Each model's samples/s over the teacher's, batch size by batch size, from this one run."""
    teacher = next((e for e in entries if e["role"] == "teacher"), None)
    for e in entries:
        if teacher is None or e is teacher:
            continue
        e["speedup_vs_teacher"] = {str(bs): (round(e["samples_per_s"][str(bs)] / teacher["samples_per_s"][str(bs)], 2)
                                             if teacher["samples_per_s"].get(str(bs)) else None) for bs in batch_sizes}


def render(entries: list[dict], batch_sizes: list[int], n_texts: int, data: str) -> str:
    header = ["model", "role", "accuracy", "macro-F1", "agreement w/ teacher", "ECE"]
    header += [f"samples/s @{bs}" for bs in batch_sizes] + ["p50 / p95 ms", "MB", "params (M)"]
    rows = []
    for e in entries:
        latency = e.get("latency_ms")
        rows.append([e["name"], e["role"], e["accuracy"], e["macro_f1"], e.get("agreement_with_teacher"), e.get("ece")]
                    + [e["samples_per_s"].get(str(bs)) for bs in batch_sizes]
                    + [f"{latency['p50']:.1f} / {latency['p95']:.1f}" if latency else None, e.get("size_mb"),
                       round(e["num_parameters"] / 1e6, 1) if e.get("num_parameters") else None])
    title = f"### {data}: {n_texts} held-out texts\n\n"
    notes = [f"- {e['name']} speed-up over the teacher: "
             + ", ".join(f"{r:.1f}x @{bs}" for bs, r in e["speedup_vs_teacher"].items() if r is not None)
             for e in entries if any(v is not None for v in e.get("speedup_vs_teacher", {}).values())]
    return title + markdown_table(header, rows) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"
