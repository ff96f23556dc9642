"""Predict labels for a file of new texts (CSV, TSV, JSONL or parquet), chunk by chunk.

Every input row comes back, in order, with its columns untouched, plus:

    predicted_label   the label (empty when the row has no text)
    score             the predicted label's probability
    prob_<label>      every label's probability
    text_missing      true for rows whose text is empty or missing: kept and marked, never dropped
    predicted_labels  multi-label only: the label set, names joined by data.label_separator

For a binary task `threshold` moves the decision: `positive_label` is predicted when its probability is
at least the threshold (precision vs recall), the other label otherwise. The input is read and the
output written a chunk at a time, to a temporary file renamed into place at the end.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .data import count_rows, file_format, read_frames
from .errors import DistillError
from .labelstore import join_sets

CHUNK_ROWS = 512  # rows read, predicted and written at a time (the progress bar moves per chunk)
ADDED = ("predicted_label", "score", "text_missing", "predicted_labels")

PredictProba = Callable[[Sequence[str], int], np.ndarray]


def first_chunk(path: Path, fmt: str, columns: Sequence[str]) -> pd.DataFrame:
    """The file's first rows, after checking it reads, has rows and has the text columns."""
    first = next(read_frames(path, fmt, CHUNK_ROWS), None)
    if first is None or first.empty:
        raise DistillError(f"predict: {path} has no rows")
    texts_of(first.head(1), columns, "", path)
    return first


def texts_of(frame: pd.DataFrame, columns: Sequence[str], separator: str, where) -> tuple[list[str], np.ndarray]:
    """(texts, missing mask): the columns joined; a row whose columns are all empty or missing is missing."""
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DistillError(f"predict: column(s) {', '.join(map(repr, absent))} not in {where} (columns: "
                           f"{', '.join(map(str, frame.columns))}); set predict.text_column")
    parts = []
    for c in columns:
        values = frame[c]
        parts.append(["" if v is None or (np.isscalar(v) and pd.isna(v)) or v is pd.NA else str(v).strip() for v in values])
    texts = [separator.join(p for p in row if p) for row in zip(*parts)]
    missing = np.array([not t for t in texts], dtype=bool)
    return texts, missing


def decide(probs: np.ndarray, labels: Sequence[str], threshold: Optional[float],
           positive_label: Optional[str]) -> np.ndarray:
    """Predicted label ids: argmax, or for a binary task the threshold on `positive_label`'s probability."""
    if threshold is None:
        return probs.argmax(axis=1)
    if len(labels) != 2:
        raise DistillError(f"predict.threshold applies to binary tasks; these labels are {list(labels)}")
    if not 0 < threshold < 1:
        raise DistillError(f"predict.threshold must be between 0 and 1, got {threshold}")
    positive = labels.index(positive_label) if positive_label is not None else 1
    return np.where(probs[:, positive] >= threshold, positive, 1 - positive)


def check_labels(labels: Sequence[str], positive_label: Optional[str]) -> None:
    if positive_label is not None and positive_label not in labels:
        raise DistillError(f"predict.positive_label='{positive_label}' is not one of the labels {list(labels)}")


class _Writer:
    """Appends chunks to a temporary file of the output's format; `close` renames it into place."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = Path(path), fmt
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parquet, self.first = None, True

    def write(self, frame: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.tmp, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))
        elif self.fmt == "jsonl":
            with open(self.tmp, "w" if self.first else "a") as f:
                frame.to_json(f, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(self.tmp, sep="\t" if self.fmt == "tsv" else ",", index=False, mode="w" if self.first else "a",
                         header=self.first)
        self.first = False

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        os.replace(self.tmp, self.path)


def predict_frame(chunk: pd.DataFrame, predict_proba: PredictProba, labels: Sequence[str],
                  text_columns: Sequence[str], separator: str = ". ", batch_size: int = 64,
                  threshold: Optional[float] = None, positive_label: Optional[str] = None,
                  where: object = "the input", sets: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                  label_separator: str = ",") -> pd.DataFrame:
    """The rows of `chunk`, in order, with the predictions added (see the module docstring). `sets`
    (multi-label): probabilities [n, K] -> 0/1 label sets, which a threshold there already holds."""
    labels = list(labels)
    texts, missing = texts_of(chunk, text_columns, separator, where)
    probs = np.full((len(texts), len(labels)), np.nan, dtype=np.float32)
    present = np.flatnonzero(~missing)
    if len(present):
        probs[present] = predict_proba([texts[i] for i in present], batch_size)
    clash = (*ADDED, *(f"prob_{label}" for label in labels))  # input columns the output replaces
    out = chunk.drop(columns=[c for c in clash if c in chunk.columns])
    ids = np.full(len(texts), -1)
    if len(present):
        ids[present] = decide(probs[present], labels, None if sets is not None else threshold, positive_label)
    # a string column even when a chunk has no text at all, so every chunk has one schema
    out["predicted_label"] = pd.array([labels[i] if i >= 0 else None for i in ids], dtype="string")
    out["score"] = np.where(ids >= 0, probs[np.arange(len(ids)), np.maximum(ids, 0)], np.nan)
    for k, label in enumerate(labels):
        out[f"prob_{label}"] = probs[:, k]
    out["text_missing"] = missing
    if sets is not None:
        chosen = np.zeros(probs.shape, dtype=np.int64)
        if len(present):
            chosen[present] = sets(probs[present])
        out["predicted_labels"] = pd.array([None if gone else names for names, gone in
                                            zip(join_sets(chosen, labels, label_separator), missing)], dtype="string")
    return out


class Tally:
    """Rows, rows without text and predicted-label counts of the frames written so far."""

    def __init__(self, labels: Sequence[str]):
        self.labels, self.rows, self.missing = list(labels), 0, 0
        self.counts = dict.fromkeys(self.labels, 0)

    def add(self, out: pd.DataFrame) -> None:
        self.rows += len(out)
        self.missing += int(out["text_missing"].sum())
        for label, n in out["predicted_label"].dropna().value_counts().items():
            self.counts[label] += int(n)

    def result(self, input_path, output_path, threshold) -> dict:
        if self.rows == 0:
            raise DistillError(f"predict: {input_path} has no rows")
        return {"input": str(input_path), "output": str(output_path), "n_rows": self.rows,
                "n_missing_text": self.missing, "label_counts": self.counts, "threshold": threshold}


def check_paths(input_path: Path, output_path: Path) -> tuple[str, str]:
    """The input's and output's formats, after checking the input exists and would not be overwritten."""
    if not input_path.is_file():
        raise DistillError(f"predict: input file {input_path} does not exist")
    fmt_in, fmt_out = file_format(input_path), file_format(output_path)
    if output_path.resolve() == input_path.resolve():
        raise DistillError(f"predict: the output {output_path} would overwrite the input; choose another predict.output")
    return fmt_in, fmt_out


def write_frames(frames: Iterable[pd.DataFrame], output_path: Path, fmt: str, labels: Sequence[str],
                 bar: tqdm) -> Tally:
    """Write predicted frames, in order, to a temporary file renamed to `output_path` once all are in."""
    writer, tally = _Writer(output_path, fmt), Tally(labels)
    try:
        for out in frames:
            writer.write(out)
            tally.add(out)
            bar.update(len(out))
        if tally.rows:
            writer.close()
        else:
            Path(writer.tmp).unlink(missing_ok=True)
    except BaseException:
        Path(writer.tmp).unlink(missing_ok=True)  # a half-written output never replaces anything
        raise
    return tally


def predict_file(input_path: Path, output_path: Path, predict_proba: PredictProba, labels: Sequence[str],
                 text_columns: Sequence[str], separator: str = ". ", batch_size: int = 64,
                 threshold: Optional[float] = None, positive_label: Optional[str] = None,
                 desc: str = "predict", encoding: str = "utf-8",
                 sets: Optional[Callable[[np.ndarray], np.ndarray]] = None, label_separator: str = ",") -> dict:
    """Write `output_path` (format from its extension) with the input's rows and the predictions."""
    input_path, output_path = Path(input_path), Path(output_path)
    fmt_in, fmt_out = check_paths(input_path, output_path)
    check_labels(labels, positive_label)
    frames = (predict_frame(chunk, predict_proba, labels, text_columns, separator, batch_size, threshold,
                            positive_label, input_path, sets=sets, label_separator=label_separator)
              for chunk in read_frames(input_path, fmt_in, CHUNK_ROWS, encoding=encoding))
    with tqdm(total=count_rows(input_path, fmt_in), desc=desc, unit="row") as bar:
        tally = write_frames(frames, output_path, fmt_out, labels, bar)
    return tally.result(input_path, output_path, threshold)
