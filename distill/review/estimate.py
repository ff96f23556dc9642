"""What a person's answers say about the models: accuracy and macro-F1 with 95% intervals on the random
part (an unbiased estimate), each student against the teacher on the same texts (McNemar), and the chosen
hard cases reported apart (never mixed into the estimate)."""
from __future__ import annotations

import numpy as np

from ..evaluation.intervals import (
    accuracy_interval,
    describe_difference,
    macro_f1_interval,
    paired_comparison,
    with_interval,
)
from ..evaluation.metrics import markdown_table
from .answers import Answers

PART_TITLES = {"random": "random sample: the estimate",
               "chosen": "chosen hard cases: not an estimate (picked for being hard)",
               "given": "answers without a part: not an estimate (how they were picked is unknown)"}


def score_part(pred: np.ndarray, gold: np.ndarray, n_labels: int) -> dict:
    if not len(gold):
        return {"n": 0, "accuracy": None, "accuracy_ci": None, "macro_f1": None, "macro_f1_ci": None}
    from sklearn.metrics import f1_score

    return {"n": int(len(gold)), "accuracy": float((pred == gold).mean()),
            "accuracy_ci": accuracy_interval(pred, gold),
            "macro_f1": float(f1_score(gold, pred, average="macro", labels=list(range(n_labels)), zero_division=0)),
            "macro_f1_ci": macro_f1_interval(pred, gold, n_labels)}


def estimate(answers: Answers, models: list[dict], labels: list[str], positive_label: str | None = None) -> dict:
    """`models`: [{"name", "role", "probs": [len(answers), K] or None where unknown, "seen": [len(answers)] bool:
    texts it trained on (left out of its scores)}], the teacher first. For two labels, each model's threshold
    table on the random part, for `positive_label` (default: the second label)."""
    n_labels = len(labels)
    positive = labels.index(positive_label or labels[-1]) if n_labels == 2 else None
    gold = np.asarray(answers.gold_ids, dtype=np.int64)
    parts = {p: answers.part(p) for p in ("random", "chosen", "given") if len(answers.part(p))}
    teacher = next((m for m in models if m["role"] == "teacher"), None)
    rows = []
    for m in models:
        pred = m["probs"].argmax(1) if m.get("probs") is not None else None
        seen = np.asarray(m.get("seen") if m.get("seen") is not None else np.zeros(len(gold), bool), dtype=bool)
        row = {"name": m["name"], "role": m["role"], "parts": {}}
        for part, idx in parts.items():
            use = idx[~seen[idx]] if pred is not None else idx[:0]
            row["parts"][part] = {**score_part(pred[use] if pred is not None else np.array([], int), gold[use],
                                               n_labels), "n_trained_on": int(seen[idx].sum())}
            if part == "random" and teacher is not None and m is not teacher and pred is not None \
                    and teacher.get("probs") is not None:
                row["vs_teacher"] = paired_comparison(pred[use], teacher["probs"][use].argmax(1), gold[use])
            if part == "random" and positive is not None and n_labels == 2 and pred is not None and len(use):
                row["thresholds"] = threshold_table(m["probs"][use, positive], gold[use] == positive)
        rows.append(row)
    return {"n_answers": len(answers), "n_blank": answers.n_blank, "files": answers.files,
            "positive_label": labels[positive] if positive is not None else None,
            "parts": {p: int(len(idx)) for p, idx in parts.items()}, "models": rows}


def render(section: dict) -> str:
    """Markdown: one table a part, then the paired comparisons."""
    out = [f"### On your reviewed texts ({section['n_answers']} answers; {section['n_blank']} left blank)\n"]
    for part in section["parts"]:
        table = [[r["name"], r["role"], r["parts"][part]["n"],
                  with_interval(r["parts"][part]["accuracy"], r["parts"][part]["accuracy_ci"]),
                  with_interval(r["parts"][part]["macro_f1"], r["parts"][part]["macro_f1_ci"])]
                 for r in section["models"]]
        out.append(f"**{PART_TITLES[part]}**, 95% intervals in brackets\n\n"
                   + markdown_table(["model", "role", "texts", "accuracy", "macro-F1"], table) + "\n")
    notes = [f"- {r['name']}: {describe_difference(r['vs_teacher'])} on {r['vs_teacher']['n']} random texts "
             f"(McNemar)" for r in section["models"] if r.get("vs_teacher")]
    trained = [f"- {r['name']} trained on {r['parts'][p]['n_trained_on']} of the {p} texts, left out of its scores"
               for r in section["models"] for p in section["parts"] if r["parts"][p]["n_trained_on"]]
    tables = [render_thresholds(r["name"], section.get("positive_label", "positive"), r["thresholds"],
                                r["parts"]["random"]["n"]) for r in section["models"] if r.get("thresholds")]
    return "\n".join(out + notes + trained) + "\n" + "".join("\n" + t for t in tables)


THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)
FEW_FOR_THRESHOLD = 30  # fewer random answers than this: too few to set a threshold from


def threshold_table(positive_probs: np.ndarray, is_positive: np.ndarray, thresholds=THRESHOLDS) -> list[dict]:
    """For a binary task: precision, recall, F1 and the share predicted positive when the positive label is
    predicted at probability >= each threshold."""
    rows = []
    for t in thresholds:
        predicted = positive_probs >= t
        tp = int((predicted & is_positive).sum())
        precision = tp / predicted.sum() if predicted.any() else None
        recall = tp / is_positive.sum() if is_positive.any() else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
        rows.append({"threshold": float(t), "precision": precision, "recall": recall, "f1": f1,
                     "share_positive": float(predicted.mean())})
    return rows


def pick_threshold(table: list[dict], precision: float | None = None, recall: float | None = None) -> dict | None:
    """The threshold meeting a target: the lowest with precision >= `precision` (the most recall at that
    precision), or the highest with recall >= `recall` (the most precision at that recall); None if none does."""
    if precision is not None:
        met = [r for r in table if r["precision"] is not None and r["precision"] >= precision]
        return min(met, key=lambda r: r["threshold"]) if met else None
    met = [r for r in table if r["recall"] is not None and r["recall"] >= recall]
    return max(met, key=lambda r: r["threshold"]) if met else None


def render_thresholds(name: str, positive: str, table: list[dict], n: int) -> str:
    rows = [[f"{r['threshold']:.2f}", r["precision"], r["recall"], r["f1"], f"{100 * r['share_positive']:.0f}%"]
            for r in table]
    return (f"**{name}: predicting `{positive}` at probability >= threshold** ({n} random reviewed texts; "
            f"`predict.threshold=...`, or `predict.target_precision` / `predict.target_recall`)\n\n"
            + markdown_table(["threshold", "precision", "recall", "F1", "predicted positive"], rows) + "\n")
