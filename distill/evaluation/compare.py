"""The side-by-side comparison of teacher and students: one entry per model, the speed-ups over the
teacher from the same run, and the markdown table eval prints and writes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ..students.folder import folder_size_mb
from .intervals import accuracy_interval, describe_difference, macro_f1_interval, paired_comparison, with_interval
from .metrics import full_report, markdown_table, readable

WEIGHT_FILES = (".safetensors", ".bin", ".onnx", ".pt")


def weights_size_mb(ref: str) -> float | None:
    path = Path(os.path.expanduser(str(ref)))
    if not path.is_dir():
        return None  # a hub id: its size is not known here
    return folder_size_mb(path, [p.name for p in path.iterdir() if p.suffix in WEIGHT_FILES])


def measure(name: str, role: str, probs: np.ndarray, gold: np.ndarray | None, speed: dict, cfg: DictConfig,
            info: dict, teacher: np.ndarray | None = None) -> dict:
    """One row of the comparison: quality against gold (when there is gold), against the teacher's labels
    (`teacher`, its probabilities on the same texts, when given), and speed from `speed` (a throughput()
    result)."""
    labels = list(cfg.data.labels)
    quality = full_report(probs, gold, labels, cfg.data.ordinal) if gold is not None else \
        {"accuracy": None, "macro_f1": None}
    if gold is not None:  # how far the scores can be trusted on this many texts
        pred = probs.argmax(1)
        quality["accuracy_ci"] = accuracy_interval(pred, gold)
        quality["macro_f1_ci"] = macro_f1_interval(pred, gold, len(labels))
        if teacher is not None:
            quality["vs_teacher"] = paired_comparison(pred, teacher.argmax(1), gold)
    if teacher is not None and gold is None:  # no gold: what can be known is how the student follows the teacher
        versus = full_report(probs, teacher.argmax(1), labels)
        pred, said = probs.argmax(1), teacher.argmax(1)
        quality.update({"agreement_with_teacher_ci": accuracy_interval(pred, said),
                        "macro_f1_vs_teacher_ci": macro_f1_interval(pred, said, len(labels))})
        quality.update({"agreement_with_teacher": versus["accuracy"], "macro_f1_vs_teacher": versus["macro_f1"],
                        "ece_vs_teacher": versus["ece"], "confusion_vs_teacher": versus["confusion"],
                        "per_class_vs_teacher": versus["per_class"]})
    entry = {"name": name, "role": role, **quality, **confidence_summary(probs, labels), **speed_fields(speed)}
    return {**entry, **info}


def speed_fields(speed: dict) -> dict:
    """samples/s at each batch size and the latency at the smallest one timed, from a throughput() result."""
    out = {"samples_per_s": {str(bs): (round(r["samples_per_s"], 2) if r else None) for bs, r in speed.items()}}
    timed = [bs for bs, r in speed.items() if r]
    if timed:
        first = speed[min(timed)]
        out["latency_ms"] = {"batch_size": min(timed), "p50": round(first["latency_ms_p50"], 2),
                             "p95": round(first["latency_ms_p95"], 2)}
    return out


def measure_sets(name: str, role: str, probs: np.ndarray, sets: np.ndarray, gold: np.ndarray | None, speed: dict,
                 info: dict, labels: list[str], teacher_sets: np.ndarray | None = None) -> dict:
    """Multi-label: one row of the comparison from a model's probabilities and label sets [N, K], against gold
    sets (when there are any) and the teacher's sets on the same texts."""
    from .multilabel import cardinality, report, set_agreement

    quality = report(probs, sets, gold, labels) if gold is not None else {"cardinality": cardinality(sets)}
    if teacher_sets is not None:
        quality["agreement_with_teacher"] = set_agreement(sets, teacher_sets)
    shares = sets.mean(0)
    return {"name": name, "role": role, **quality, "label_shares": dict(zip(labels, shares.round(4).tolist())),
            **speed_fields(speed), **info}


CONFIDENCE_EDGES = np.linspace(0.0, 1.0, 21)


def confidence_summary(probs: np.ndarray, labels: list[str]) -> dict:
    """How sure a model is (its top probability: mean, quartiles, share below 0.6, a 20-bin histogram)
    and how often it picks each label: what can be read without any gold label."""
    top = probs.max(axis=1)
    counts = np.bincount(probs.argmax(axis=1), minlength=len(labels))
    return {"confidence": {"mean": float(top.mean()), "p25": float(np.percentile(top, 25)),
                           "median": float(np.median(top)), "p75": float(np.percentile(top, 75)),
                           "share_below_0.6": float((top < 0.6).mean()),
                           "histogram": np.histogram(top, CONFIDENCE_EDGES)[0].tolist()},
            "label_shares": {label: float(c / max(1, len(top))) for label, c in zip(labels, counts)}}


def speedups(entries: list[dict], batch_sizes: list[int]) -> None:
    """Each model's samples/s over the teacher's, batch size by batch size, from this one run."""
    teacher = next((e for e in entries if e["role"] == "teacher"), None)
    for e in entries:
        if teacher is None or e is teacher:
            continue
        e["speedup_vs_teacher"] = {str(bs): (round(e["samples_per_s"][str(bs)] / teacher["samples_per_s"][str(bs)], 2)
                                             if teacher["samples_per_s"].get(str(bs)) else None) for bs in batch_sizes}


def render_sets(entries: list[dict], batch_sizes: list[int], n_texts: int, data: str, gold: bool = True) -> str:
    """Multi-label: the comparison as a markdown table (micro-F1 and the rest against gold sets; agreement:
    the micro-F1 of a model's sets against the teacher's)."""
    scores = ["micro_f1", "macro_f1", "map", "subset_accuracy", "hamming_loss", "cardinality"] if gold else \
        ["cardinality"]
    names = {"micro_f1": "micro-F1", "macro_f1": "macro-F1", "map": "mAP", "subset_accuracy": "exact match",
             "hamming_loss": "Hamming loss", "cardinality": "labels a text"}
    header = ["model", "role", *(names[k] for k in scores), "agreement w/ teacher (micro-F1)"]
    header += [f"samples/s @{bs}" for bs in batch_sizes] + ["MB", "parameters"]
    rows = [[e["name"], e["role"], *(e.get(k) for k in scores), e.get("agreement_with_teacher")]
            + [readable("samples_per_s", e["samples_per_s"].get(str(bs))) for bs in batch_sizes]
            + [f"{e['size_mb']:,.1f}" if e.get("size_mb") is not None else None,
               readable("num_parameters", e.get("num_parameters") or None)] for e in entries]
    gold_card = next((e["gold_cardinality"] for e in entries if e.get("gold_cardinality") is not None), None)
    what = f"held-out texts with gold label sets ({gold_card:.2f} labels a text)" if gold_card is not None else \
        "texts the students never trained on (no gold: agreement with the teacher's sets)"
    notes = [f"- {e['name']} speed-up over the teacher: "
             + ", ".join(f"{r:.1f}x @{bs}" for bs, r in e["speedup_vs_teacher"].items() if r is not None)
             for e in entries if any(v is not None for v in e.get("speedup_vs_teacher", {}).values())]
    return (f"### {data}: {n_texts} {what}, multi-label\n\n" + markdown_table(header, rows)
            + ("\n\n" + "\n".join(notes) if notes else "") + "\n")


def render(entries: list[dict], batch_sizes: list[int], n_texts: int, data: str, gold: bool = True) -> str:
    """The comparison as a markdown table: against gold, or (no gold) against the teacher's labels on texts
    the students never trained on."""
    if gold:
        header = ["model", "role", "accuracy [95% CI]", "macro-F1 [95% CI]", "agreement w/ teacher", "ECE"]
        quality = lambda e: [with_interval(e["accuracy"], e.get("accuracy_ci")),  # noqa: E731
                             with_interval(e["macro_f1"], e.get("macro_f1_ci")), e.get("agreement_with_teacher"),
                             e.get("ece")]
    else:
        header = ["model", "role", "agreement w/ teacher [95% CI]", "macro-F1 vs teacher [95% CI]", "ECE vs teacher",
                  "mean confidence"]
        quality = lambda e: [  # noqa: E731
            with_interval(e.get("agreement_with_teacher"), e.get("agreement_with_teacher_ci"))
            if e.get("agreement_with_teacher") is not None else None,
            with_interval(e.get("macro_f1_vs_teacher"), e.get("macro_f1_vs_teacher_ci"))
            if e.get("macro_f1_vs_teacher") is not None else None,
            e.get("ece_vs_teacher"), (e.get("confidence") or {}).get("mean")]
    header += [f"samples/s @{bs}" for bs in batch_sizes] + ["p50 / p95 ms", "MB", "parameters"]
    rows = []
    for e in entries:
        latency = e.get("latency_ms")
        speeds = [e["samples_per_s"].get(str(bs)) for bs in batch_sizes]
        rows.append([e["name"], e["role"], *quality(e)]
                    + [readable("samples_per_s", v) for v in speeds]
                    + [f"{latency['p50']:.1f} / {latency['p95']:.1f}" if latency else None,
                       f"{e['size_mb']:,.1f}" if e.get("size_mb") is not None else None,
                       readable("num_parameters", e.get("num_parameters") or None)])
    what = "held-out texts" if gold else ("texts the students never trained on, scored against the teacher's "
                                          "labels (no gold labels)")
    title = f"### {data}: {n_texts} {what}\n\n"
    notes = [f"- {e['name']} speed-up over the teacher: "
             + ", ".join(f"{r:.1f}x @{bs}" for bs, r in e["speedup_vs_teacher"].items() if r is not None)
             for e in entries if any(v is not None for v in e.get("speedup_vs_teacher", {}).values())]
    notes += [f"- {e['name']}: {describe_difference(e['vs_teacher'])} on the same {e['vs_teacher']['n']} texts "
              f"(McNemar)" for e in entries if e.get("vs_teacher")]
    return title + markdown_table(header, rows) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"
