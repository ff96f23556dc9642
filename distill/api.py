"""The Python API, for notebooks: the same stages, caches and artifacts as the command line.

    import distill
    labels = distill.label(texts, ["negative", "positive"])       # a DataFrame: row, text, prob_*, label, confidence
    student = distill.train(labels, student="minilm")              # a trained, saved classifier
    student.predict(["a new text"]); student.predict_proba(texts)  # label names; a [N, K] probability array
    student = distill.load(student.path)                           # later, from its folder
    queue = distill.review_queue(labels, student)                  # texts to check: fill its `gold` column
    distill.estimate(queue, labels, [student])                     # accuracy on the answers, 95% intervals

Texts may be a list, a pandas Series, a DataFrame or a `datasets.Dataset` (with `column=`). The texts are
written once to `<outputs>/api/` (named by their content) and labelled by the label stage itself, so a
second call with the same texts and settings is a cache hit, and the CLI can use the same files. Any
Hydra override of the command line can be given in `overrides` (e.g. ["teacher.batch_size=16"]). Problems
raise `distill.DistillError`, with the command line's one-line messages.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import DistillError

TextsLike = object  # list[str] | pd.Series | pd.DataFrame | datasets.Dataset | np.ndarray | str


def as_texts(texts: TextsLike, column: str = "text") -> list:
    """A list of texts from any of the accepted containers (None and NaN kept: the stages skip them)."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, pd.DataFrame):
        if column not in texts.columns:
            raise DistillError(f"column {column!r} not in the DataFrame (columns: {', '.join(map(str, texts.columns))}); "
                               f"pass column=...")
        texts = texts[column]
    elif hasattr(texts, "column_names") and hasattr(texts, "select_columns"):  # a datasets.Dataset
        if column not in texts.column_names:
            raise DistillError(f"column {column!r} not in the dataset (columns: {', '.join(texts.column_names)}); "
                               f"pass column=...")
        texts = texts[column]
    values = texts.tolist() if hasattr(texts, "tolist") else list(texts)
    return [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


def _config(overrides: list[str], outputs: str | None):
    from .config import load_config

    return load_config(list(overrides) + ([f"paths.outputs={outputs}"] if outputs else []))


def _outputs(overrides: list[str], outputs: str | None) -> Path:
    from . import artifacts

    return artifacts.outputs_root(_config([o for o in overrides if o.startswith("paths.")], outputs))


def _write_once(frame: pd.DataFrame, folder: Path, stem: str) -> Path:
    """`frame` as <folder>/<stem>-<content hash>.parquet, written once (atomically) and reused."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()[:12]
    path = folder / f"{stem}-{digest}.parquet"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
    return path


def label(texts: TextsLike, labels: Sequence[str], teacher: str | None = None, *, column: str = "text",
          name: str = "api", overrides: Sequence[str] = (), outputs: str | None = None) -> pd.DataFrame:
    """The teacher's labels of `texts`: one row a text (empty ones skipped; `row` is its position in
    `texts`), every label's probability, the label and its probability (`confidence`)."""
    from .labelling import label_split

    labels = [str(x) for x in labels]
    items = as_texts(texts, column)
    if not items:
        raise DistillError("distill.label: no texts given")
    root = _outputs(list(overrides), outputs)
    pool = _write_once(pd.DataFrame({"text": [t if t is not None else "" for t in items]}), root / "api", "texts")
    cfg = _config(["data=file", f"data.pool.path={_quoted(str(pool))}", f"data.name={name}", "data.labels=[" +
                   ",".join(_quoted(x) for x in labels) + "]", *([f"teacher={teacher}"] if teacher else []),
                   *overrides], outputs)
    from .stages import resolve_teacher

    result = label_split(resolve_teacher(cfg), "pool")
    frame = pd.read_parquet(result.path).drop(columns=["id"])
    frame.attrs.update(labels_path=str(result.path), teacher=cfg.teacher.name, labels=labels)
    return frame


def _quoted(value: str) -> str:
    """A value inside a Hydra list override, quoted when it holds characters Hydra would read as syntax."""
    return value if value.replace("_", "").replace("-", "").isalnum() else "'" + value.replace("'", "\\'") + "'"


def train(labels: pd.DataFrame, student: str | None = None, *, name: str = "api", overrides: Sequence[str] = (),
          outputs: str | None = None) -> "Student":
    """A student trained on `labels` (what `label` returned, corrected or not: a `text` column and one
    `prob_<label>` column a label), saved under <outputs>/students/<name>/; cached like stage=train."""
    from .labelstore import PROB_PREFIX
    from .stages import stage_run

    if not isinstance(labels, pd.DataFrame) or "text" not in labels.columns:
        raise DistillError("distill.train takes the DataFrame distill.label returns (a `text` column and a "
                           "`prob_<label>` column for each label)")
    names = [c[len(PROB_PREFIX):] for c in labels.columns if c.startswith(PROB_PREFIX)]
    if len(names) < 2:
        raise DistillError(f"distill.train: the DataFrame has {len(names)} prob_<label> column(s); a classifier "
                           f"needs two or more")
    kept = labels[["text", *(PROB_PREFIX + n for n in names)]].reset_index(drop=True)
    root = _outputs(list(overrides), outputs)
    path = _write_once(kept, root / "api", "labels")
    cfg = _config(["data=file", f"data.pool.path={_quoted(str(path))}", f"data.name={name}",
                   "data.labels=[" + ",".join(_quoted(x) for x in names) + "]", f"train.labels_path={_quoted(str(path))}",
                   *([f"student={student}"] if student else []), *overrides], outputs)
    result = stage_run("train")(cfg)
    return Student(result["student_dir"])


def _probs(labels: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    from .labelstore import PROB_PREFIX

    if not isinstance(labels, pd.DataFrame) or "text" not in labels.columns:
        raise DistillError("pass the DataFrame distill.label returns (a `text` column and a `prob_<label>` column "
                           "for each label)")
    names = [c[len(PROB_PREFIX):] for c in labels.columns if c.startswith(PROB_PREFIX)]
    return labels["text"].tolist(), names, labels[[PROB_PREFIX + n for n in names]].to_numpy(np.float64)


def review_queue(labels: pd.DataFrame, student: "Student | None" = None, *, size: int = 200, random: int = 100,
                 seed: int = 0, answered: pd.DataFrame | None = None) -> pd.DataFrame:
    """A review queue over `labels` (what `label` returned): `random` texts the student never trained on (a
    seeded random sample, what estimates rest on) and up to `size - random` texts worth checking, with why,
    and an empty `gold` column to fill in. Texts with a `gold` answer in `answered` are left out (a second
    round). Same rules as `distill stage=review` (distill/review/queue.py)."""
    from . import artifacts
    from .review.answers import Answers, add_frame
    from .review.queue import Candidates, compose

    texts, names, probs = _probs(labels)
    c = Candidates(texts=texts, teacher=probs, labels=names,
                   rows=labels["row"].to_numpy() if "row" in labels.columns else None)
    if student is not None:
        c.student = student.predict_proba(texts)
        trained = artifacts.trained_texts(student.path)
        c.unseen = np.array([t not in trained for t in texts])
    done = add_frame(Answers(), answered, names, "answered") if answered is not None else Answers()
    return compose(c, size, random, seed, set(done.texts))


def estimate(answers: pd.DataFrame, labels: pd.DataFrame, students: Sequence["Student"] = ()) -> dict:
    """The teacher (its `labels`) and each student on a filled-in review queue (`text`, `gold`, `part`):
    accuracy and macro-F1 with 95% intervals on the random part, the chosen part apart, and each student
    against the teacher (McNemar). A text a student trained on is left out of its scores."""
    from . import artifacts
    from .review.answers import Answers, add_frame
    from .review.estimate import estimate as score

    texts, names, probs = _probs(labels)
    given = add_frame(Answers(), answers, names, "answers")
    if not len(given):
        raise DistillError("distill.estimate: no answers (every `gold` cell is empty)")
    index = {t: i for i, t in enumerate(texts)}
    teacher = np.zeros((len(given), len(names)))
    unknown = np.array([t not in index for t in given.texts])
    for i, t in enumerate(given.texts):
        if t in index:
            teacher[i] = probs[index[t]]
    models = [{"name": labels.attrs.get("teacher", "teacher"), "role": "teacher", "probs": teacher, "seen": unknown}]
    for s in students:
        trained = artifacts.trained_texts(s.path)
        models.append({"name": s.path.name, "role": "student", "probs": s.predict_proba(given.texts),
                       "seen": np.array([t in trained for t in given.texts])})
    return score(given, models, names)


def load(path: str | Path, device: str = "auto", variant: str = "torch") -> "Student":
    """A trained student folder (what `train` or stage=train wrote), ready to predict."""
    return Student(path, device=device, variant=variant)


class Student:
    """A trained student: `predict` gives label names, `predict_proba` a float32 [N, K] array."""

    def __init__(self, path: str | Path, device: str = "auto", variant: str = "torch"):
        from .students.load import load_classifier

        self.path = Path(path)
        self.model = load_classifier(self.path, device=device, variant=variant)
        self.labels = list(self.model.labels)

    def predict_proba(self, texts: TextsLike, batch_size: int = 64, column: str = "text") -> np.ndarray:
        items = as_texts(texts, column)
        missing = [i for i, t in enumerate(items) if not t or not t.strip()]
        if missing:
            raise DistillError(f"text {missing[0]} (counting from 0) is empty: {len(missing)} of {len(items)} texts "
                               f"have no text to classify")
        return self.model.predict_proba(items, batch_size=batch_size)

    def predict(self, texts: TextsLike, batch_size: int = 64, column: str = "text") -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts, batch_size, column).argmax(axis=1)]

    def __repr__(self) -> str:
        return f"Student({str(self.path)!r}, labels={self.labels})"
