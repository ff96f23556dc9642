"""A person's answers read back: the `gold` column of review queues they filled in (or any table with `text`
and `gold` columns), checked against the label list.

Blank `gold` cells are skipped and counted; a value that is not a label (after ignoring case and surrounding
spaces) is a one-line error naming the file and the row; the same text answered twice with different labels
is an error naming both places. A Label Studio JSON export (`.json`, review/labelstudio.py) reads the same way,
a task standing for a row. A row's `part` (random / chosen) says what it may be used for; a table
without that column counts as `given`: used in training, never as the random sample behind an estimate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import file_format, read_frames
from ..errors import DistillError

PARTS = ("random", "chosen", "given")
ANSWER_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")


@dataclass
class Answers:
    texts: list[str] = field(default_factory=list)
    gold: list[str] = field(default_factory=list)  # label names, as in the label list
    gold_ids: list[int] = field(default_factory=list)  # their indices in the label list
    parts: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)  # "file, row n" of each answer
    files: list[str] = field(default_factory=list)
    n_blank: int = 0  # rows whose gold cell was left empty

    def __len__(self) -> int:
        return len(self.texts)

    def part(self, name: str) -> np.ndarray:
        return np.array([i for i, p in enumerate(self.parts) if p == name], dtype=np.int64)

    def by_text(self) -> dict[str, str]:
        return dict(zip(self.texts, self.gold))


def _label(value, labels: list[str], where: str) -> str:
    text = str(value).strip()
    if text in labels:
        return text
    folded = [name for name in labels if name.strip().casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise DistillError(f"{where}: gold '{value}' is not one of the labels ({', '.join(labels)}); correct the cell or "
                       f"leave it empty to skip the row")


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()


def read_answers(paths: list[Path], labels: list[str]) -> Answers:
    """Every filled `gold` cell of these files (see the module docstring). Read once per file version: a
    student's name depends on the answers, and one command asks for that name many times."""
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in map(Path, paths))
    return _read_answers(stamp, tuple(labels))


@lru_cache(maxsize=16)
def _read_answers(stamp: tuple, labels: tuple) -> Answers:
    paths, labels = [Path(p) for p, _, _ in stamp], list(labels)
    out = Answers(files=[str(p) for p in paths])
    for path in paths:
        if Path(path).suffix.lower() == ".json":  # a Label Studio export
            from .labelstudio import read_export

            add_frame(out, read_export(path), labels, f"{path} (Label Studio)", first_row=1)
            continue
        fmt = file_format(path, key="review.answers")
        first_row = 2 if fmt in ("csv", "tsv") else 1  # a spreadsheet's row number: the header is row 1
        for frame in read_frames(path, fmt, key="review.answers", encoding="utf-8-sig"):
            add_frame(out, frame, labels, str(path), first_row)
            first_row += len(frame)
    return out


def add_frame(out: Answers, frame: pd.DataFrame, labels: list[str], name: str, first_row: int = 1) -> Answers:
    """The answers in one table (`text`, `gold` and optionally `part` columns), added to `out`."""
    missing = [c for c in ("text", "gold") if c not in frame.columns]
    if missing:
        raise DistillError(f"review.answers: {name} has no {' or '.join(repr(c) for c in missing)} column (it has "
                           f"{', '.join(map(str, frame.columns))}); answers need the text and its label in `gold`")
    seen = {t: i for i, t in enumerate(out.texts)}
    parts = frame["part"] if "part" in frame.columns else pd.Series(["given"] * len(frame))
    for n, (text, gold, part) in enumerate(zip(frame["text"], frame["gold"], parts)):
        where = f"{name}, row {first_row + n}"
        if _blank(gold):
            out.n_blank += 1
            continue
        if _blank(text):
            raise DistillError(f"{where}: a gold label '{gold}' with no text")
        label = _label(gold, labels, where)
        part = str(part).strip() if not _blank(part) else "given"
        if part not in PARTS:
            raise DistillError(f"{where}: part '{part}' is not one of {', '.join(PARTS)}")
        text = str(text)
        if text in seen:
            earlier = seen[text]
            if out.gold[earlier] != label:
                raise DistillError(f"{where}: this text was answered '{out.gold[earlier]}' at {out.where[earlier]} "
                                   f"and '{label}' here; keep one answer")
            continue
        seen[text] = len(out.texts)
        out.texts.append(text)
        out.gold.append(label)
        out.gold_ids.append(labels.index(label))
        out.parts.append(part)
        out.where.append(where)
    return out


def answer_files(setting: str | None, review_folder: Path) -> list[Path]:
    """The files `review.answers` names: auto (this data set's review rounds, when any), a file, or a folder."""
    if setting is None or str(setting).lower() in ("null", "none", ""):
        return []
    if str(setting) == "auto":
        return sorted(review_folder.glob("round-*.csv")) if review_folder.is_dir() else []
    path = Path(setting).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in ANSWER_SUFFIXES)
        if not files:
            raise DistillError(f"review.answers={setting}: the folder holds no {'/'.join(ANSWER_SUFFIXES)} file")
        return files
    if not path.is_file():
        raise DistillError(f"review.answers={setting}: no such file or folder")
    return [path]


def with_answers(texts: list[str], probs: np.ndarray, weights: np.ndarray | None, answers: Answers,
                 gold_weight: float) -> tuple[list[str], np.ndarray, np.ndarray | None, dict]:
    """The training set with the person's answers in it: a chosen (or given) text learns its gold label,
    one-hot, at weight `gold_weight` (added when the pool does not hold it); a text of the random part is
    taken out, so the estimates that rest on it stay unbiased."""
    if not len(answers):
        return texts, probs, weights, {}
    if gold_weight <= 0:
        raise DistillError(f"review.gold_weight must be above 0, got {gold_weight}")
    labels_k = probs.shape[1]
    random = set(answers.texts[i] for i in answers.part("random"))
    teach = {answers.texts[i]: answers.gold_ids[i] for i in range(len(answers)) if answers.parts[i] != "random"}
    keep = [i for i, t in enumerate(texts) if t not in random]
    texts, probs = [texts[i] for i in keep], probs[keep].copy()
    w = np.ones(len(texts)) if weights is None else np.asarray(weights, dtype=np.float64)[keep].copy()
    replaced = 0
    for i, t in enumerate(texts):
        if t in teach:
            probs[i] = np.eye(labels_k, dtype=probs.dtype)[teach[t]]
            w[i] = gold_weight
            replaced += 1
    present = set(texts)
    added = [t for t in teach if t not in present]
    if added:
        texts = texts + added
        probs = np.concatenate([probs, np.eye(labels_k, dtype=probs.dtype)[[teach[t] for t in added]]])
        w = np.concatenate([w, np.full(len(added), gold_weight)])
    stats = {"answers_trained_on": replaced + len(added), "answers_added": len(added),
             "random_answers_kept_out": len(random)}
    return texts, probs, w, stats
