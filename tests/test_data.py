"""distill.data: every file layout on tiny files, the seeded split, the error messages, and the real sets."""
from __future__ import annotations

import json
import logging
import re

import pandas as pd
import pytest
from omegaconf import OmegaConf

from distill.config import DataConfig, load_config
from distill.data import HeldOut, data_fingerprint, load_heldout, load_pool
from distill.errors import DistillError

from conftest import SHARED, require_shared


def data_cfg(**overrides):
    base = {"name": "tiny", "labels": ["neg", "pos"], "label_map": {"0": "neg", "1": "pos"}, "label_column": "label",
            "heldout_fraction": 0.5}
    return OmegaConf.merge(OmegaConf.structured(DataConfig), {**base, **overrides})


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# --- one test a format --------------------------------------------------------------------------------

def test_csv_with_header(tmp_path):
    write(tmp_path / "train.csv", 'text,label\n"a good, fine film",1\nawful,0\n')
    write(tmp_path / "dev.csv", "label,text\n0,boring\n1,great\n")
    cfg = data_cfg(pool={"path": "train.csv"}, heldout={"path": "dev.csv"})
    assert load_pool(cfg, tmp_path) == ["a good, fine film", "awful"]
    assert load_heldout(cfg, tmp_path) == HeldOut(texts=["boring", "great"], gold=["neg", "pos"])


def test_tsv_keeps_quote_characters(tmp_path):
    # Unbalanced and paired quotes, as in SMS Spam: a quoting-aware reader would swallow rows.
    write(tmp_path / "t.tsv", 'sentence\tlabel\n"the movie\t1\nhe said "wow" twice\t0\nit \'s "fine\t1\n')
    cfg = data_cfg(pool={"path": "t.tsv"}, heldout={"path": "t.tsv"}, text_columns=["sentence"])
    assert load_pool(cfg, tmp_path) == ['"the movie', 'he said "wow" twice', "it 's \"fine"]
    assert load_heldout(cfg, tmp_path).gold == ["pos", "neg", "pos"]


def test_headerless_csv_with_column_names(tmp_path):
    write(tmp_path / "news", "1,Title one,Body one\n0,Title two,Body two\n")
    cfg = data_cfg(pool={"path": "news", "format": "csv"}, heldout={"path": "news", "format": "csv"},
                   column_names=["label", "title", "body"], text_columns=["title", "body"])
    assert load_pool(cfg, tmp_path) == ["Title one. Body one", "Title two. Body two"]
    assert load_heldout(cfg, tmp_path).gold == ["pos", "neg"]


def test_jsonl(tmp_path):
    rows = [{"text": "fun", "label": 1, "extra": [1, 2]}, {"text": "dull", "label": 0}]
    write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    cfg = data_cfg(pool={"path": "d.jsonl"}, heldout={"path": "d.jsonl"})
    assert load_pool(cfg, tmp_path) == ["fun", "dull"]
    assert load_heldout(cfg, tmp_path).gold == ["pos", "neg"]


def test_parquet_with_gaps_in_the_label_column(tmp_path):
    # A missing gold value turns the column into floats; 1.0 still maps through label_map["1"].
    pd.DataFrame({"text": ["fun", "dull", "meh"], "label": [1, 0, None]}).to_parquet(tmp_path / "g.parquet")
    cfg = data_cfg(pool={"path": "g.parquet"}, heldout={"path": "g.parquet"})
    with pytest.raises(DistillError, match=r"gold value '' in .*g.parquet \(row 3, 1 such rows\).*give that row its "
                                           r"label, or remove it"):
        load_heldout(cfg, tmp_path)


def test_parquet(tmp_path):
    pd.DataFrame({"text": ["fun", "dull"], "label": [1, 0]}).to_parquet(tmp_path / "d.parquet")
    cfg = data_cfg(pool={"path": "d.parquet"}, heldout={"path": str(tmp_path / "d.parquet")})  # absolute too
    assert load_pool(cfg, tmp_path) == ["fun", "dull"]
    assert load_heldout(cfg, "/nonexistent").gold == ["pos", "neg"]


def test_lines_with_labels_file(tmp_path):
    write(tmp_path / "text.txt", "  indented stays \t\nsecond \r\n")
    write(tmp_path / "labels.txt", "1\n0\n")
    cfg = data_cfg(pool={"path": "text.txt"}, heldout={"path": "text.txt", "labels_path": "labels.txt"})
    assert load_pool(cfg, tmp_path) == ["  indented stays", "second"]
    assert load_heldout(cfg, tmp_path) == HeldOut(texts=["  indented stays", "second"], gold=["pos", "neg"])


def test_hub_source_maps_class_ids_to_names(monkeypatch):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    fake = datasets.Dataset.from_dict({"text": ["fun", "dull"], "label": [1, 0]}, features=features)
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config, split: fake)
    cfg = data_cfg(hub_id="someone/set", label_map=None, pool={"path": "train", "format": "hub"},
                   heldout={"path": "validation", "format": "hub"})
    assert load_pool(cfg, "unused") == ["fun", "dull"]
    assert load_heldout(cfg, "unused").gold == ["pos", "neg"]


def test_hub_failure_is_one_line(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network here\nlong traceback detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    cfg = data_cfg(hub_id="someone/set", pool={"path": "train", "format": "hub"})
    with pytest.raises(DistillError, match=r"hub dataset someone/set split train: no network here; check data.hub_id"):
        load_pool(cfg, "unused")


# --- texts, gold labels and which rows ----------------------------------------------------------------

def test_ag_news_style_join_skips_empty_parts(tmp_path):
    write(tmp_path / "n.csv", 'label,title,description\n1,Rates rise ,"Banks react."\n2,Cup final,\n')
    cfg = data_cfg(pool={"path": "n.csv"}, heldout={"path": "n.csv"}, text_columns=["title", "description"],
                   labels=["World", "Sports"], label_map={"1": "World", "2": "Sports"})
    assert load_pool(cfg, tmp_path) == ["Rates rise. Banks react.", "Cup final"]
    assert load_heldout(cfg, tmp_path).gold == ["World", "Sports"]


def test_gold_values_already_names_need_no_label_map(tmp_path):
    write(tmp_path / "s.tsv", "Label\tSMS\nham\thi there\nspam\tWIN a prize\n")
    cfg = data_cfg(pool={"path": "s.tsv"}, heldout={"path": "s.tsv"}, text_columns=["SMS"], label_column="Label",
                   labels=["ham", "spam"], label_map=None)
    assert load_heldout(cfg, tmp_path).gold == ["ham", "spam"]


def numbered_csv(tmp_path, n=50):
    # The label is written into each text, so a misaligned gold list would show.
    rows = "".join(f"text {i} is {'pos' if i % 3 else 'neg'},{int(bool(i % 3))}\n" for i in range(n))
    return write(tmp_path / "all.csv", "text,label\n" + rows)


def test_seeded_split_is_reproducible_disjoint_and_aligned(tmp_path):
    numbered_csv(tmp_path)
    cfg = data_cfg(pool={"path": "all.csv"}, heldout=None, heldout_fraction=0.2, seed=7)
    pool, held = load_pool(cfg, tmp_path), load_heldout(cfg, tmp_path)
    assert len(held.texts) == 10 and len(pool) == 40
    assert set(pool).isdisjoint(held.texts) and len(set(pool) | set(held.texts)) == 50
    assert all(text.endswith(gold) for text, gold in zip(held.texts, held.gold))
    assert load_pool(cfg, tmp_path) == pool and load_heldout(cfg, tmp_path) == held
    other = load_heldout(data_cfg(pool={"path": "all.csv"}, heldout=None, heldout_fraction=0.2, seed=8), tmp_path)
    assert other.texts != held.texts


def test_pool_size_and_heldout_size_sample_deterministically(tmp_path, caplog):
    numbered_csv(tmp_path)
    cfg = data_cfg(pool={"path": "all.csv"}, heldout=None, heldout_fraction=0.2, pool_size=15, heldout_size=4)
    full = load_pool(data_cfg(pool={"path": "all.csv"}, heldout=None, heldout_fraction=0.2), tmp_path)
    with caplog.at_level(logging.INFO, logger="distill.data"):
        pool = load_pool(cfg, tmp_path)
    assert "pool: 15 of 40 texts from" in caplog.text
    assert len(pool) == 15 and set(pool) <= set(full)
    assert pool == [t for t in full if t in pool]  # kept in file order
    assert pool == load_pool(cfg, tmp_path)
    held = load_heldout(cfg, tmp_path)
    assert len(held.texts) == 4 and set(held.texts).isdisjoint(full)


@pytest.mark.parametrize("layout", ["csv", "lines"])
def test_pool_never_needs_gold(tmp_path, layout):
    # The label column / labels file is absent: the pool loads, only scoring complains.
    if layout == "csv":
        write(tmp_path / "p.csv", "text\nfirst\nsecond\n")
        cfg = data_cfg(pool={"path": "p.csv"}, heldout=None)
    else:
        write(tmp_path / "p.txt", "first\nsecond\n")
        cfg = data_cfg(pool={"path": "p.txt", "labels_path": "missing_labels.txt"}, heldout=None)
    assert len(load_pool(cfg, tmp_path)) == 1
    assert data_fingerprint(cfg, tmp_path)["pool"]["source"]["size"] > 0
    with pytest.raises(DistillError, match="label"):
        load_heldout(cfg, tmp_path)


def test_fingerprint_tracks_files_and_settings(tmp_path):
    numbered_csv(tmp_path)
    cfg = data_cfg(pool={"path": "all.csv"}, heldout=None, pool_size=10)
    first = data_fingerprint(cfg, tmp_path)
    json.dumps(first)
    assert first == data_fingerprint(cfg, tmp_path)
    assert data_fingerprint(data_cfg(pool={"path": "all.csv"}, heldout=None, pool_size=10, heldout_size=3),
                            tmp_path)["pool"] == first["pool"]  # scoring settings leave the pool key alone
    assert data_fingerprint(data_cfg(pool={"path": "all.csv"}, heldout=None, pool_size=11), tmp_path) != first
    numbered_csv(tmp_path, n=51)
    assert data_fingerprint(cfg, tmp_path)["pool"] != first["pool"]


# --- errors name the problem and the key to change ----------------------------------------------------

def test_unknown_text_column(tmp_path):
    write(tmp_path / "d.csv", "a,b,c\nx,y,z\n")
    cfg = data_cfg(pool={"path": "d.csv"}, text_columns=["foo"])
    with pytest.raises(DistillError, match=r"data.text_columns: column 'foo' not in .*d.csv \(columns: a, b, c\)"):
        load_pool(cfg, tmp_path)


def test_unknown_label_column(tmp_path):
    write(tmp_path / "d.csv", "text,gold\nx,1\n")
    cfg = data_cfg(pool={"path": "d.csv"}, heldout={"path": "d.csv"})
    with pytest.raises(DistillError, match=r"data.label_column: column 'label' not in .*d.csv \(columns: text, gold\)"):
        load_heldout(cfg, tmp_path)


def test_unknown_gold_value(tmp_path):
    write(tmp_path / "d.csv", "text,label\nx,1\ny,7\n")
    cfg = data_cfg(pool={"path": "d.csv"}, heldout={"path": "d.csv"})
    with pytest.raises(DistillError, match=r"gold value '7' in .*d.csv \(row 2.*data.labels.*data.label_map"):
        load_heldout(cfg, tmp_path)


@pytest.mark.parametrize("value,example", [("awful", "+data.label_map={awful: neg}"), ("7", "+data.label_map.7=neg")])
def test_an_unknown_gold_value_without_a_label_map_names_the_override_that_maps_it(tmp_path, value, example):
    write(tmp_path / "d.csv", f"text,label\nx,neg\ny,{value}\n")
    cfg = data_cfg(pool={"path": "d.csv"}, heldout={"path": "d.csv"}, label_map=None)
    with pytest.raises(DistillError, match=f"gold value '{value}' in .*map it to one with data.label_map, e.g. "
                                           f"'{re.escape(example)}'"):
        load_heldout(cfg, tmp_path)


def test_empty_labels_list(tmp_path):
    write(tmp_path / "d.csv", "text,label\nx,1\n")
    cfg = data_cfg(pool={"path": "d.csv"}, heldout={"path": "d.csv"}, labels=[])
    with pytest.raises(DistillError, match="data.labels is empty: list the label names"):
        load_heldout(cfg, tmp_path)


def test_lines_and_labels_count_mismatch(tmp_path):
    write(tmp_path / "t.txt", "one\ntwo\nthree\n")
    write(tmp_path / "l.txt", "0\n1\n")
    cfg = data_cfg(pool={"path": "t.txt"}, heldout={"path": "t.txt", "labels_path": "l.txt"})
    with pytest.raises(DistillError, match=r"t.txt has 3 lines but .*l.txt has 2"):
        load_heldout(cfg, tmp_path)


def test_empty_text_line_is_skipped_and_counted(tmp_path, caplog):
    write(tmp_path / "t.txt", "one\n   \nthree\n")
    with caplog.at_level(logging.WARNING, logger="distill.data"):
        assert load_pool(data_cfg(pool={"path": "t.txt"}), tmp_path) == ["one", "three"]
    assert "1 empty or blank text(s) skipped (line 2," in caplog.text
    with pytest.raises(DistillError, match=r"1 empty text\(s\) in .*t.txt \(line 2,"):
        load_pool(data_cfg(pool={"path": "t.txt"}, empty_texts="error"), tmp_path)


def test_empty_table_rows_are_reported_not_dropped_silently(tmp_path, caplog):
    write(tmp_path / "d.csv", "title,body\nA,x\n,\n , \nB,y\n")
    cfg = data_cfg(pool={"path": "d.csv"}, text_columns=["title", "body"], label_column=None)  # no gold, no split
    with caplog.at_level(logging.WARNING, logger="distill.data"):
        assert load_pool(cfg, tmp_path) == ["A. x", "B. y"]
    assert "2 empty or blank text(s) skipped (row 2, 3," in caplog.text
    with pytest.raises(DistillError, match=r"2 empty text\(s\) in .*d.csv \(row 2, 3,"):
        load_pool(data_cfg(pool={"path": "d.csv"}, text_columns=["title", "body"], label_column=None,
                           empty_texts="error"), tmp_path)


@pytest.mark.parametrize("source", [{"path": "d.xlsx"}, {"path": "d.csv", "format": "excel"}])
def test_unknown_format(tmp_path, source):
    write(tmp_path / "d.csv", "text\nx\n")
    with pytest.raises(DistillError, match=r"d\.(xlsx|csv).*set data.pool.format to one of csv, tsv"):
        load_pool(data_cfg(pool=source), tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(DistillError, match=r"data.heldout.path: nope.csv not found in the working directory"):
        load_heldout(data_cfg(pool={"path": "p.csv"}, heldout={"path": "nope.csv"}), tmp_path)


# --- the real data sets in ../shared/data ---------------------------------------------------------------

@pytest.mark.parametrize("preset, probe, pool_n, heldout_n, labels", [
    ("sst2", "sst2/train.tsv", 2000, 872, {"negative", "positive"}),
    ("ag_news", "ag_news/test.csv", 2000, 1520, {"World", "Sports", "Business", "Sci/Tech"}),
    ("sms_spam", "sms_spam/SMSSpamCollection", 2000, 1115, {"ham", "spam"}),
    ("tweeteval_emotion", "tweeteval_emotion/test_text.txt", 3257, 1421, {"anger", "joy", "optimism", "sadness"}),
])
def test_real_presets_load(preset, probe, pool_n, heldout_n, labels):
    require_shared("data", *probe.split("/"))
    cfg = load_config([f"data={preset}", f"paths.data={SHARED / 'data'}"])
    pool, held = load_pool(cfg.data, cfg.paths.data), load_heldout(cfg.data, cfg.paths.data)
    assert (len(pool), len(held.texts), len(held.gold)) == (pool_n, heldout_n, heldout_n)
    assert set(held.gold) == labels
    assert all(pool) and all(held.texts)
    if preset == "ag_news":  # title and description joined, and the pool never holds a scored row
        assert all(". " in text for text in pool)
        assert set(pool).isdisjoint(held.texts)
