"""The LF summary (as Snorkel's `LFAnalysis`): coverage, overlap, conflict and, when gold is given for
scoring, the accuracy of every source; and the markdown people read."""
from __future__ import annotations

import numpy as np

from ..evaluation.metrics import markdown_table
from .sources import ABSTAIN


def lf_summary(ids: np.ndarray, names: list[str], labels: list[str], gold: np.ndarray | None = None) -> list[dict]:
    """One row a source from [N, S] label ids (ABSTAIN = -1).

    coverage: share of texts it votes on; overlap: share it votes on together with another source;
    conflict: share it votes on where another source votes a different label; accuracy (gold only):
    share right of the texts it votes on."""
    voted = ids != ABSTAIN
    rows = []
    for s, name in enumerate(names):
        mine, others = voted[:, s], np.delete(voted, s, axis=1)
        other_ids = np.delete(ids, s, axis=1)
        disagree = (others & (other_ids != ids[:, [s]])).any(1)
        row = {"source": name, "polarity": sorted({labels[i] for i in np.unique(ids[mine, s])}),
               "coverage": float(mine.mean()), "overlap": float((mine & others.any(1)).mean()),
               "conflict": float((mine & disagree).mean())}
        if gold is not None:
            row["correct"] = int((ids[mine, s] == gold[mine]).sum())
            row["incorrect"] = int(mine.sum() - row["correct"])
            row["accuracy"] = row["correct"] / mine.sum() if mine.any() else None
        rows.append(row)
    return rows


def combine_ids(ids: np.ndarray, n_labels: int) -> np.ndarray:
    """[N] majority of several LFs' ids (ABSTAIN where none voted; ties go to the lower label id)."""
    counts = np.stack([(ids == k).sum(1) for k in range(n_labels)], axis=1)
    return np.where(counts.sum(1) > 0, counts.argmax(1), ABSTAIN)


def render(summary: dict) -> str:
    """summary.md: held-out scores of every source and label model, then the pool LF summary."""
    data, n_pool, n_held = summary["data"], summary["n_pool"], summary["n_heldout"]
    scored = f"scored on {n_held} held-out texts" if summary.get("gold", True) else "no gold labels to score it"
    out = [f"### Weak supervision on {data}: label model fitted on {n_pool} pool texts (no gold), {scored}\n"]
    if summary["heldout"]:
        rows = [[r["name"], r["kind"], r["coverage"], r["accuracy"], r["macro_f1"], r.get("accuracy_all")]
                for r in summary["heldout"]]
        out.append(markdown_table(["source / label model", "kind", "coverage", "accuracy (where it votes)",
                                   "macro-F1 (where it votes)", "accuracy (abstain = wrong)"], rows))
    best = summary.get("best_single_source")
    if best:
        out.append(f"\nBest single source: {best['name']} ({best['accuracy']:.4f}); "
                   f"the student learns from `{summary['label_model']}`.")
    out.append(f"\n#### Sources on the pool ({n_pool} texts, no gold)\n")
    header = ["source", "polarity", "coverage", "overlap", "conflict", "learned accuracy", "temperature",
              "held-out accuracy"]
    held = {r["name"]: r["accuracy"] for r in summary["heldout"]}
    rows = [[r["source"], ", ".join(r["polarity"]), r["coverage"], r["overlap"], r["conflict"],
             r.get("learned_accuracy"), r.get("temperature"), held.get(r["source"])] for r in summary["pool_lfs"]]
    out.append(markdown_table(header, rows))
    out.append("\nLearned accuracy: Dawid-Skene's estimate, without gold, of how often a source is right where it "
               "votes (for a teacher voting soft probabilities: the probability it puts on the truth, on average). "
               "Temperature: fitted to the other sources' majority (> 1 softens the teacher).")
    noise = summary.get("noise")
    if noise:
        line = (f"\nNoise ({noise['mode']}, features {'+'.join(noise['features'])}, {noise['folds']}-fold): "
                f"{noise['flagged']} of {n_pool} pool labels flagged as likely wrong; mean weight "
                f"{noise['mean_weight']:.3f}")
        if noise.get("heldout_flagged_precision") is not None:
            line += (f". On held-out gold, flagged labels are wrong {noise['heldout_flagged_precision']:.1%} of "
                     f"the time vs {noise['heldout_unflagged_error']:.1%} for unflagged ones")
        out.append(line + ".")
    return "\n".join(out) + "\n"


def render_per_label(summary: dict) -> str:
    """summary.md of multi-label weak supervision: held-out scores of every source's and label model's sets, then
    what the label models learned of each source on the pool."""
    data, n_pool, n_held = summary["data"], summary["n_pool"], summary["n_heldout"]
    scored = f"scored on {n_held} held-out texts" if summary.get("gold", True) else "no gold labels to score it"
    out = [f"### Weak supervision on {data} (multi-label): a binary label model a label, fitted on {n_pool} pool "
           f"texts (no gold), {scored}\n"]
    if summary["heldout"]:
        rows = [[r["name"], r["kind"], r["coverage"], r["precision"], r["micro_f1"], r["macro_f1"], r["map"],
                 r["cardinality"]] for r in summary["heldout"]]
        out.append(markdown_table(["source / label model", "kind", "coverage", "precision of its labels",
                                   "micro-F1", "macro-F1", "mAP", "labels a text"], rows))
        out.append(f"\nA source's sets: the labels it says are there (a teacher by its label_sets, a keyword list its "
                   f"own label where it fires). Label models' sets: weak.label_sets={summary['label_sets']}"
                   + (f", {summary['none_label']} when no other label is" if summary.get("none_label") else "") + ".")
    best = summary.get("best_single_source")
    if best:
        out.append(f"\nBest single source: {best['name']} (micro-F1 {best['micro_f1']:.4f}); "
                   f"the student learns from `{summary['label_model']}`.")
    out.append(f"\n#### Sources on the pool ({n_pool} texts, no gold)\n")
    rows = [[r["source"], r["kind"], r["coverage"], r["cardinality"], r["precision"], r["recall"],
             ", ".join(r["labels"]) if len(r["labels"]) <= 3 else f"{len(r['labels'])} labels"]
            for r in summary["pool_sources"]]
    out.append(markdown_table(["source", "kind", "coverage", "labels a text", "learned precision", "learned recall",
                               "votes on"], rows))
    out.append("\nLearned precision and recall: each label's Dawid-Skene estimate, without gold, of how often the "
               "source is right when it says a label is there, and how many of the label's texts it finds (the mean "
               "over the labels it votes on).")
    return "\n".join(out) + "\n"
