"""Property-based tests of every file reader (issue 32): random bytes, random quoting, random unicode and random
column layouts thrown at the pool loader, predict's reader, the review answers reader and the label store.
The outcome is always rows read or a one-line DistillError, never another exception (a traceback for the user).
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from distill.config import DataConfig
from distill.data import file_format, load_pool, read_frames
from distill.errors import DistillError
from distill.labelstore import read_labels
from distill.predictions import first_chunk, texts_of
from distill.review.answers import read_answers

# DISTILL_FUZZ_EXAMPLES=1000 for a longer hunt than the fast tier's
FUZZ = settings(max_examples=int(os.environ.get("DISTILL_FUZZ_EXAMPLES", 40)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
EXTENSIONS = [".csv", ".tsv", ".jsonl", ".txt", ".parquet"]
LABELS = ["negative", "positive"]

cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
names = st.one_of(st.just("text"), st.just("gold"), cells)


def one_line_or_rows(read):
    """Run a reader: its rows, or a DistillError whose message is one non-empty line; anything else fails."""
    try:
        return read()
    except DistillError as e:
        message = str(e).strip()
        assert message and "\n" not in message, f"not a one-line error: {message!r}"
        return e


def pool_cfg(name: str, column: str = "text"):
    return OmegaConf.merge(OmegaConf.structured(DataConfig), {
        "name": "fuzz", "labels": LABELS, "pool": {"path": name}, "text_columns": [column], "label_column": None})


def read_everything(folder: Path, name: str, column: str = "text"):
    """Each reader that takes a user's file, on folder/name."""
    path = folder / name
    assume("${" not in column)  # OmegaConf would read it as an interpolation: not a file reader's concern
    one_line_or_rows(lambda: load_pool(pool_cfg(name, column), folder))
    if path.suffix != ".txt":
        def predict_reads():
            fmt = file_format(path)
            first_chunk(path, fmt, [column])
            return [texts_of(frame, [column], " ", path) for frame in read_frames(path, fmt)]
        one_line_or_rows(predict_reads)
        one_line_or_rows(lambda: read_answers([path], LABELS))
    if path.suffix == ".parquet":
        one_line_or_rows(lambda: read_labels(path, LABELS))


@FUZZ
@given(data=st.binary(max_size=3000), extension=st.sampled_from(EXTENSIONS))
def test_random_bytes(data, extension):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"f{extension}").write_bytes(data)
        read_everything(Path(tmp), f"f{extension}")


@st.composite
def tables(draw):
    """A delimited file: random column names (often `text` among them), random unicode cells, random quoting,
    sometimes a ragged row or a quote cut off."""
    header = draw(st.lists(names, min_size=1, max_size=4))
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=len(header) + 1), max_size=8))
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, csv.QUOTE_NONE]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, escapechar="\\")
    for row in [header, *rows]:
        try:
            writer.writerow(row)
        except csv.Error:  # QUOTE_NONE cannot write a lone empty field: write the line as it is
            buffer.write(delimiter.join(row) + "\n")
    text = buffer.getvalue()
    if draw(st.booleans()) and '"' in text:  # an unbalanced quote
        cut = text.index('"')
        text = text[:cut] + text[cut + 1:]
    return text, draw(st.sampled_from(header))


@FUZZ
@given(table=tables(), extension=st.sampled_from([".csv", ".tsv"]), bom=st.booleans())
def test_random_tables(table, extension, bom):
    text, column = table
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"f{extension}").write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
        read_everything(Path(tmp), f"f{extension}", column)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | cells,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
                           max_leaves=8)


@FUZZ
@given(lines=st.lists(st.one_of(st.dictionaries(names, json_values, max_size=4), json_values,
                                cells), max_size=8), column=names)
def test_random_jsonl(lines, column):
    text = "\n".join(json.dumps(line) for line in lines)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "f.jsonl").write_text(text, encoding="utf-8")
        read_everything(Path(tmp), "f.jsonl", column)


@FUZZ
@given(lines=st.lists(cells, max_size=8))
def test_random_jsonl_lines_that_are_not_json(lines):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "f.jsonl").write_text("\n".join(lines), encoding="utf-8")
        read_everything(Path(tmp), "f.jsonl")


@FUZZ
@given(columns=st.dictionaries(names, st.sampled_from(["text", "int", "float", "none", "list"]), min_size=1,
                               max_size=4), n=st.integers(0, 5), values=st.lists(cells, min_size=5, max_size=5))
def test_random_parquet_layouts(columns, n, values):
    make = {"text": lambda i: values[i], "int": lambda i: i, "float": lambda i: i / 3, "none": lambda i: None,
            "list": lambda i: [values[i]]}
    frame = pd.DataFrame({name: [make[kind](i) for i in range(n)] for name, kind in columns.items()})
    with tempfile.TemporaryDirectory() as tmp:
        try:
            frame.to_parquet(Path(tmp) / "f.parquet")
        except Exception:  # a layout pyarrow itself cannot write (e.g. an all-None object column): nothing to read
            return
        read_everything(Path(tmp), "f.parquet", next(iter(columns)))
