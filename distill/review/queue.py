"""Which texts a person should label, and why.

A round's queue mixes two parts, told apart by its `part` column:

- `random`: a seeded random sample of texts no student trained on (the student's holdout of the labelled
  pool, when it has one). Only this part gives unbiased accuracy estimates, for teacher and student alike.
- `chosen`: the texts most worth checking, taken in turns from each reason that applies: the teacher's
  lowest margins (top probability minus the runner-up), teacher-student disagreements (the student most
  sure first), conflicts between weak-supervision sources, texts the noise filter flags (with the label it
  suggests), and texts of rare classes. They come from the texts students train on, so their answers can
  join training without touching the estimate.

Texts already answered are left out, and no text appears twice. The rows are shuffled (seeded), so a person
who stops half way still has a random sample and some hard cases.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..teachers.base import top_margin

REASONS = {
    "margin": "teacher unsure (lowest margin)",
    "disagree": "student disagrees with teacher",
    "conflict": "sources disagree",
    "noise": "noise filter doubts the label",
    "rare": "rare class",
}
RARE_SHARE = 0.5  # a class is rare below this share of 1/K of the teacher's labels


@dataclass
class Candidates:
    """Everything known about the labelled pool that a queue is chosen from (row i = text i)."""
    texts: list[str]
    teacher: np.ndarray  # [N, K] the teacher's (or label model's) probabilities
    labels: list[str]
    ids: np.ndarray | None = None  # the label file's ids
    rows: np.ndarray | None = None  # rows in the user's file, when known
    student: np.ndarray | None = None  # [N, K] the student's probabilities, when there is a student
    unseen: np.ndarray | None = None  # [N] bool: no student trained on it
    votes: dict[str, list] = field(default_factory=dict)  # source -> label name or None (abstained), per text
    noisy: np.ndarray | None = None  # [N] bool: the noise filter doubts the label
    suggested: list | None = None  # the noise filter's label for a flagged text


def _ranked(c: Candidates, pool: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """For each reason that applies to some text in `pool` (indices), those texts, most useful first."""
    teacher = c.teacher.argmax(1)
    out = {"margin": pool[np.argsort(top_margin(c.teacher[pool]), kind="stable")]}
    if c.student is not None:
        differ = pool[c.student[pool].argmax(1) != teacher[pool]]
        out["disagree"] = differ[np.argsort(-c.student[differ].max(1), kind="stable")]
    if len(c.votes) > 1:
        voted = pd.DataFrame(c.votes).iloc[pool]
        distinct = voted.nunique(axis=1, dropna=True).to_numpy()
        against = np.array([sum(v is not None and v == v and v != c.labels[teacher[i]] for v in row)
                            for i, row in zip(pool, voted.itertuples(index=False))])
        hit = distinct > 1
        out["conflict"] = pool[hit][np.argsort(-against[hit], kind="stable")]
    if c.noisy is not None:
        out["noise"] = pool[np.asarray(c.noisy, dtype=bool)[pool]]
    shares = np.bincount(teacher, minlength=len(c.labels)) / max(1, len(teacher))
    rare = np.flatnonzero(shares < RARE_SHARE / len(c.labels))
    if len(rare):
        out["rare"] = rng.permutation(pool[np.isin(teacher[pool], rare)])
    return {k: v for k, v in out.items() if len(v)}


def compose(c: Candidates, size: int, n_random: int, seed: int, reviewed: set[str] = frozenset()) -> pd.DataFrame:
    """The queue: `n_random` random texts and up to `size - n_random` chosen ones, none already reviewed."""
    if size < 1 or not 0 <= n_random <= size:
        raise ValueError(f"review.size must be at least 1 and review.random between 0 and it, got {size}, {n_random}")
    rng = np.random.default_rng([seed, 23])
    seen_text: set[str] = set(reviewed)
    eligible = np.zeros(len(c.texts), dtype=bool)
    for i, text in enumerate(c.texts):  # the first of duplicate texts; blank ones are nothing to review
        if isinstance(text, str) and text.strip() and text not in seen_text:
            eligible[i] = True
            seen_text.add(text)
    unseen = np.asarray(c.unseen, dtype=bool) if c.unseen is not None and np.any(c.unseen) else None
    random_pool = np.flatnonzero(eligible & unseen) if unseen is not None else np.flatnonzero(eligible)
    picked_random = np.sort(rng.choice(random_pool, size=min(n_random, len(random_pool)), replace=False))
    chosen_pool = np.flatnonzero(eligible & ~unseen) if unseen is not None else \
        np.setdiff1d(np.flatnonzero(eligible), picked_random)
    ranked = _ranked(c, chosen_pool, rng)
    members = {k: set(v.tolist()) for k, v in ranked.items() if k != "margin"}
    picked: list[tuple[int, str]] = []
    taken: set[int] = set()
    cursors = {k: 0 for k in ranked}
    while len(picked) < size - len(picked_random) and cursors:
        for reason in list(cursors):  # one text from each reason in turn
            order = ranked[reason]
            while cursors[reason] < len(order) and int(order[cursors[reason]]) in taken:
                cursors[reason] += 1
            if cursors[reason] >= len(order):
                del cursors[reason]
                continue
            i = int(order[cursors[reason]])
            taken.add(i)
            picked.append((i, reason))
            if len(picked) >= size - len(picked_random):
                break
    rows = [(int(i), "random", "random sample (for the accuracy estimate)") for i in picked_random]
    for i, reason in picked:
        also = [REASONS[k] for k in REASONS if k != reason and i in members.get(k, ())]
        rows.append((i, "chosen", "; ".join([REASONS[reason], *also])))
    order = rng.permutation(len(rows))
    return table(c, [rows[j] for j in order])


def table(c: Candidates, rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    """The queue's columns: what a person reads to decide, and an empty `gold` column to fill in."""
    idx = np.array([r[0] for r in rows], dtype=np.int64)
    teacher = c.teacher[idx] if len(idx) else np.zeros((0, len(c.labels)))
    out = {"part": [r[1] for r in rows], "why": [r[2] for r in rows]}
    if c.ids is not None:
        out["id"] = np.asarray(c.ids)[idx]
    if c.rows is not None:
        out["row"] = np.asarray(c.rows)[idx]
    out["text"] = [c.texts[i] for i in idx]
    out["teacher_label"] = [c.labels[j] for j in teacher.argmax(1)] if len(idx) else []
    out["teacher_prob"] = np.round(teacher.max(1), 3) if len(idx) else []
    if c.student is not None:
        student = c.student[idx]
        out["student_label"] = [c.labels[j] for j in student.argmax(1)] if len(idx) else []
        out["student_prob"] = np.round(student.max(1), 3) if len(idx) else []
    for source, votes in c.votes.items():
        out[f"vote.{source}"] = [votes[i] for i in idx]
    if c.noisy is not None:
        out["noise_suggests"] = [c.suggested[i] if c.suggested is not None and c.noisy[i] else None for i in idx]
    out["gold"] = [""] * len(idx)
    return pd.DataFrame(out)
