"""The label path streams: stream_pool reads the pool chunk by chunk, label_texts takes it a shard at a time,
and both give exactly what the whole-file, whole-frame versions gave."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_data import data_cfg, write

from distill import data, labelstore
from distill.data import stream_pool
from distill.errors import DistillError
from distill.labelstore import _shard_path, label_texts
from distill.teachers.base import Teacher

N = 50
CHUNK = 7  # rows a streaming reader holds at once in these tests: many chunks, a partial last one


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(data, "CHUNK_ROWS", CHUNK)


def whole_file_pool(cfg, data_dir) -> list[str]:
    """The pool as load_pool read it before streaming: every text of the file in memory, then the rows."""
    texts, _, _ = data._read_source(cfg, cfg.pool, "pool", data_dir, with_gold=False)
    rows, _ = data._rows(cfg, len(texts), "pool")
    return [texts[i] for i in rows]


# --- stream_pool == the whole-file read, for every layout and row selection ---------------------------

def table(n=N) -> pd.DataFrame:
    """Titles and bodies with separators, quotes and gaps to trip a reader; a label column never read."""
    title = [f'title {i}, "quoted"' if i % 5 == 0 else f"title {i}" for i in range(n)]
    body = ["" if i % 4 == 0 else f"body {i} it 's \"fine" for i in range(n)]
    return pd.DataFrame({"label": [i % 2 for i in range(n)], "title": title, "body": body})


def write_source(tmp_path, layout, monkeypatch) -> dict:
    """Write the table in `layout`; the data config keys that read it."""
    frame, both = table(), {"text_columns": ["title", "body"]}
    if layout in ("csv", "tsv"):
        frame.to_csv(tmp_path / f"d.{layout}", sep="," if layout == "csv" else "\t", index=False,
                     quoting=csv.QUOTE_NONE if layout == "tsv" else csv.QUOTE_MINIMAL)
        return {"pool": {"path": f"d.{layout}"}, **both}
    if layout == "headerless":
        frame.to_csv(tmp_path / "news", header=False, index=False)
        return {"pool": {"path": "news", "format": "csv"}, "column_names": ["label", "title", "body"], **both}
    if layout == "jsonl":
        records = [{k: v for k, v in row.items() if v != ""} for row in frame.to_dict("records")]  # gaps: absent
        write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n")
        return {"pool": {"path": "d.jsonl"}, **both}
    if layout == "parquet":
        frame.to_parquet(tmp_path / "d.parquet")
        return {"pool": {"path": "d.parquet"}, **both}
    if layout == "lines":
        write(tmp_path / "d.txt", "".join(f"  {t} \t\r\n" if i % 3 else f"{t}\u2028{b}\n"
                                          for i, (t, b) in enumerate(zip(frame.title, frame.body))))
        write(tmp_path / "d.labels", "".join(f"{label}\n" for label in frame.label))  # gold: the split is made
        return {"pool": {"path": "d.txt", "labels_path": "d.labels"}}
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_pandas(frame)
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config, split: dataset)
    return {"hub_id": "someone/set", "pool": {"path": "train", "format": "hub"}, **both}


SELECTIONS = {"all": {}, "split": {"heldout": None, "heldout_fraction": 0.2},
              "split+sample": {"heldout": None, "heldout_fraction": 0.2, "pool_size": 15}}


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("layout", ["csv", "tsv", "headerless", "jsonl", "parquet", "lines", "hub"])
def test_stream_pool_equals_the_whole_file_read(tmp_path, monkeypatch, layout, selection):
    keys = write_source(tmp_path, layout, monkeypatch)
    heldout = {"heldout": {**keys["pool"]}} if selection == "all" else {}  # a held-out source: the whole file
    cfg = data_cfg(**keys, **heldout, **SELECTIONS[selection])
    pool = stream_pool(cfg, tmp_path)
    expected = whole_file_pool(cfg, tmp_path)
    assert len(expected) == {"all": N, "split": 40, "split+sample": 15}[selection]
    assert pool.n_texts == len(pool) == len(expected)
    assert list(pool) == expected
    assert list(pool) == expected  # a second pass reads the file again, the same way
    assert data.load_pool(cfg, tmp_path) == expected


@pytest.mark.parametrize("layout", ["jsonl", "parquet"])
def test_numbers_render_as_in_the_whole_file_read(tmp_path, layout):
    # Ints with a gap somewhere in the file are floats to pandas ("3.0"), also in chunks without a gap.
    numbers = [3, None] + list(range(4, 4 + N))
    if layout == "jsonl":
        write(tmp_path / "d.jsonl", "".join(json.dumps({"n": n, "word": "w"}) + "\n" for n in numbers))
    else:  # written by a tool other than pandas: a plain int64 column with nulls
        pq.write_table(pa.table({"n": pa.array(numbers, pa.int64()), "word": ["w"] * len(numbers)}),
                       tmp_path / "d.parquet")
    cfg = data_cfg(pool={"path": f"d.{layout}"}, heldout={"path": f"d.{layout}"}, text_columns=["n", "word"])
    texts = list(stream_pool(cfg, tmp_path))
    assert texts == whole_file_pool(cfg, tmp_path)
    assert texts[:3] == ["3.0. w", "w", "4.0. w"] and texts[-1] == f"{N + 3}.0. w"


def test_empty_texts_are_found_across_chunks_before_any_iteration(tmp_path):
    lines = ["text"] * 30
    lines[2] = lines[11] = lines[25] = " "
    write(tmp_path / "t.txt", "\n".join(lines) + "\n")
    with pytest.raises(DistillError, match=r"3 empty text\(s\) in .*t.txt \(line 3, 12, 26, counting from 1"):
        stream_pool(data_cfg(pool={"path": "t.txt"}, empty_texts="error"), tmp_path)
    pool = stream_pool(data_cfg(pool={"path": "t.txt"}), tmp_path)  # skipped and counted, by default
    assert pool.notes["n_empty_skipped"] == 3 and 2 not in pool.rows and 11 not in pool.rows


def test_a_missing_jsonl_column_is_found_once_the_file_is_read(tmp_path):
    write(tmp_path / "d.jsonl", "".join(json.dumps({"txt": f"t{i}"}) + "\n" for i in range(20)))
    with pytest.raises(DistillError, match=r"data.text_columns: column 'text' not in .*d.jsonl \(columns: txt\)"):
        stream_pool(data_cfg(pool={"path": "d.jsonl"}), tmp_path)


def test_a_file_that_changes_between_passes_is_an_error(tmp_path):
    path = write(tmp_path / "t.txt", "".join(f"text {i}\n" for i in range(20)))
    pool = stream_pool(data_cfg(pool={"path": "t.txt"}, heldout={"path": "t.txt"}), tmp_path)
    path.write_text("".join(f"text {i}\n" for i in range(25)), encoding="utf-8")
    with pytest.raises(DistillError, match="changed while it was read"):
        list(pool)


# --- label_texts on any iterable ---------------------------------------------------------------------

class FakeTeacher(Teacher):
    """Probabilities from the text's length, and a log of every text it was asked about."""

    name, labels = "fake", ["neg", "pos", "mid"]

    def __init__(self):
        self.seen: list[str] = []

    def predict_proba(self, texts, batch_size=None, progress=False) -> np.ndarray:
        self.seen += list(texts)
        logits = np.array([[len(t) % 5, len(t) % 3, 1.0] for t in texts], dtype=np.float32).reshape(-1, 3)
        return (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)


TEXTS = [f"text {i} {'very ' * (i % 6)}long" for i in range(103)]
IDENTITY = {"data": "test"}


def run(texts, folder, teacher=None, **kwargs):
    teacher = teacher or FakeTeacher()
    return label_texts(texts, lambda: teacher, folder, IDENTITY, shard_size=10, **kwargs)


def same_meta(a: dict, b: dict) -> bool:
    timing = {"seconds", "texts_per_s", "created"}
    return {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}


def test_a_generator_gives_the_same_labels_as_a_list(tmp_path):
    from_list = run(TEXTS, tmp_path / "list")
    from_generator = run((t for t in TEXTS), tmp_path / "gen", n_texts=len(TEXTS))
    pd.testing.assert_frame_equal(pd.read_parquet(from_list.path), pd.read_parquet(from_generator.path))
    assert from_list.path.read_bytes() == from_generator.path.read_bytes()
    assert same_meta(from_list.meta, from_generator.meta) and from_generator.meta["n_texts"] == 103


def test_the_streamed_label_file_equals_the_pandas_concat_of_its_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(labelstore, "ROW_GROUP_ROWS", 25)  # shards of 10 gathered into groups of 30
    result = run(TEXTS, tmp_path)
    shards = [pd.read_parquet(_shard_path(tmp_path, i)) for i in range(11)]
    concat = pd.concat(shards, ignore_index=True)
    pd.testing.assert_frame_equal(pd.read_parquet(result.path), concat)
    groups = pq.ParquetFile(result.path).metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [30, 30, 30, 13]
    assert list(concat["id"]) == list(range(103)) and list(concat["text"]) == TEXTS
    counts = concat["label"].value_counts().to_dict()
    assert list(result.meta["label_counts"].items()) == list(counts.items())  # same counts, same order
    assert result.meta["mean_confidence"] == pytest.approx(float(concat["confidence"].mean()), rel=1e-6)
    assert not list(tmp_path.glob("*.tmp"))


def test_the_input_is_read_one_shard_at_a_time(tmp_path):
    shard_size, n = 10, 103

    def texts():
        """Fails if a text more than one shard past the first unwritten shard is asked for."""
        for i, text in enumerate(TEXTS):
            written = len(list((tmp_path / "shards").glob("part-*.parquet")))
            if i >= (written + 2) * shard_size:
                raise AssertionError(f"text {i} pulled with only {written} shards written")
            yield text

    teacher = FakeTeacher()
    result = run(texts(), tmp_path, teacher, n_texts=n)
    assert teacher.seen == TEXTS and result.meta["n_labelled_this_run"] == n


def test_resume_reads_past_finished_shards_without_labelling_them(tmp_path, caplog):
    first = run(TEXTS, tmp_path)
    expected = pd.read_parquet(first.path)
    for name in ("labels.parquet", "meta.json"):
        (tmp_path / name).unlink()
    _shard_path(tmp_path, 4).unlink()
    _shard_path(tmp_path, 10).unlink()
    teacher = FakeTeacher()
    with caplog.at_level("INFO", logger="distill.labelstore"):
        again = run(iter(TEXTS), tmp_path, teacher, n_texts=len(TEXTS))
    assert "resuming: 9 of 11 shards already labelled" in caplog.text
    assert teacher.seen == TEXTS[40:50] + TEXTS[100:]
    pd.testing.assert_frame_equal(expected, pd.read_parquet(again.path))
    assert run(iter([]), tmp_path, n_texts=len(TEXTS)).cached  # a cache hit reads nothing


def test_shards_that_do_not_cover_the_rows_are_refused(tmp_path):
    run(TEXTS, tmp_path)
    for name in ("labels.parquet", "meta.json"):
        (tmp_path / name).unlink()
    shutil.copy(_shard_path(tmp_path, 2), _shard_path(tmp_path, 3))  # rows 20-29 twice, 30-39 never
    with pytest.raises(DistillError, match="do not cover rows 0..102 exactly once"):
        run(TEXTS, tmp_path)
    assert not (tmp_path / "labels.parquet").exists()


@pytest.mark.parametrize("texts, message", [(TEXTS[:95], "ended after 95 of 103 texts"),
                                            (TEXTS + ["one more"], "more than the 103 texts")])
def test_an_input_of_the_wrong_length_is_an_error(tmp_path, texts, message):
    with pytest.raises(DistillError, match=message):
        run(iter(texts), tmp_path, n_texts=len(TEXTS))


def test_a_pool_streams_into_the_label_store(tmp_path):
    write(tmp_path / "t.txt", "".join(t + "\n" for t in TEXTS))
    pool = stream_pool(data_cfg(pool={"path": "t.txt"}, heldout={"path": "t.txt"}), tmp_path)
    result = label_texts(pool, FakeTeacher, tmp_path / "out", IDENTITY, shard_size=10)
    assert pd.read_parquet(result.path)["text"].tolist() == TEXTS
