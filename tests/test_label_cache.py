"""The per-text label cache: a text the same teacher labelled over the same label set is not labelled again,
and what comes out equals a labelling made from scratch, row for row."""
from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
from test_data_streaming import FakeTeacher

from distill import artifacts
from distill.config import load_config
from distill.errors import DistillError, no_room
from distill.labelstore import TextCache, label_texts

TEXTS = [f"review {i} {'quite ' * (i % 5)}good" for i in range(60)]


def run(texts, folder, cache_path=None, teacher=None, identity=None, shard_size=8):
    teacher = teacher or FakeTeacher()
    cache = TextCache(cache_path, 3) if cache_path else None
    result = label_texts(texts, lambda: teacher, folder, identity or {"data": len(texts)}, shard_size=shard_size,
                         cache=cache)
    return result, teacher


def frame(result) -> pd.DataFrame:
    return pd.read_parquet(result.path)


def test_appended_rows_are_the_only_ones_labelled_and_the_result_equals_a_fresh_labelling(tmp_path):
    cache = tmp_path / "cache.sqlite"
    first, teacher = run(TEXTS[:50], tmp_path / "first", cache)
    assert teacher.seen == TEXTS[:50] and first.meta["n_from_cache"] == 0
    grown, teacher = run(TEXTS, tmp_path / "grown", cache)
    assert teacher.seen == TEXTS[50:]  # only the 10 new rows reached the teacher
    assert grown.meta["n_from_cache"] == 50 and grown.meta["n_labelled_this_run"] == 10
    fresh, _ = run(TEXTS, tmp_path / "fresh")
    pd.testing.assert_frame_equal(frame(grown), frame(fresh))


def test_a_reordered_sample_and_an_edited_row_reuse_every_known_text(tmp_path):
    cache = tmp_path / "cache.sqlite"
    run(TEXTS, tmp_path / "first", cache)
    order = list(np.random.default_rng(0).permutation(len(TEXTS)))
    edited = [TEXTS[i] for i in order]
    edited[17] = "an edited row nobody labelled"
    again, teacher = run(edited, tmp_path / "again", cache)
    assert teacher.seen == ["an edited row nobody labelled"]  # a shard mixing known and new texts
    fresh, _ = run(edited, tmp_path / "fresh")
    pd.testing.assert_frame_equal(frame(again), frame(fresh))


def test_a_repeated_text_and_a_wholly_known_run_label_nothing(tmp_path):
    cache = tmp_path / "cache.sqlite"
    texts = TEXTS[:10] + TEXTS[:10]
    once, teacher = run(texts, tmp_path / "once", cache)
    assert teacher.seen == TEXTS[:10]  # a repeat in a later shard is found in the cache
    twice, teacher = run(texts, tmp_path / "twice", cache, identity={"other": 1})
    assert teacher.seen == [] and twice.meta["n_from_cache"] == 20 and twice.meta["texts_per_s"] is None
    pd.testing.assert_frame_equal(frame(once), frame(twice))


def test_resume_after_a_kill_with_the_cache(tmp_path):
    cache, folder = tmp_path / "cache.sqlite", tmp_path / "labels"

    class Dies(FakeTeacher):
        def predict_proba(self, texts, batch_size=None, progress=False):
            if len(self.seen) >= 24:
                raise KeyboardInterrupt  # as a kill part way: three shards done
            return super().predict_proba(texts)

    with pytest.raises(KeyboardInterrupt):
        run(TEXTS, folder, cache, teacher=Dies())
    assert len(TextCache(cache, 3).get(TEXTS[:24])) == 24
    resumed, teacher = run(TEXTS, folder, cache)
    assert teacher.seen == TEXTS[24:]
    fresh, _ = run(TEXTS, tmp_path / "fresh")
    pd.testing.assert_frame_equal(frame(resumed), frame(fresh))


def test_cache_off_labels_everything(tmp_path):
    run(TEXTS, tmp_path / "a", tmp_path / "cache.sqlite")
    _, teacher = run(TEXTS, tmp_path / "b")
    assert teacher.seen == TEXTS


def test_a_damaged_cache_is_a_one_line_error(tmp_path):
    cache = tmp_path / "cache.sqlite"
    cache.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DistillError, match="label cache .* cannot be .*delete it .*label.cache=false"):
        run(TEXTS, tmp_path / "labels", cache)


def test_entries_of_another_width_are_relabelled(tmp_path):
    cache = TextCache(tmp_path / "c.sqlite", 3)
    cache.put(["a", "b"], np.ones((2, 3), np.float32))
    other = TextCache(tmp_path / "c.sqlite", 2)
    assert other.get(["a", "b", "c"]) == [None, None, None]
    assert [p.tolist() for p in cache.get(["b", "a"])] == [[1, 1, 1], [1, 1, 1]]


def test_sqlite_full_disk_reads_as_no_room():
    assert no_room(sqlite3.OperationalError("database or disk is full"))


@pytest.mark.parametrize("change", [["teacher.template='It is about {}.'"], ["data.labels=[bad,good]"],
                                    ["teacher.model=another/model"], ["teacher.max_length=64"],
                                    ["teacher.dtype=float32"]])
def test_every_setting_that_changes_labels_changes_the_cache(change):
    base = artifacts.label_cache(load_config([]))
    assert artifacts.label_cache(load_config(change)) != base


@pytest.mark.parametrize("same", [["teacher.batch_size=3"], ["data.pool_size=10"], ["label.shard_size=7"],
                                  ["teacher.device=cpu"]])
def test_settings_that_keep_the_labels_share_the_cache(same):
    assert artifacts.label_cache(load_config(same)) == artifacts.label_cache(load_config([]))


@pytest.mark.integration
def test_bench_label_cache_on_a_real_teacher(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from conftest import require_model, require_shared

    require_shared("data", "sst2", "train.tsv")
    require_model("deberta-v3-nli")
    out = tmp_path / "lc.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_label_cache.py"
    done = subprocess.run([sys.executable, str(script), "--rows", "120", "--work", str(tmp_path / "w"),
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(out.read_text())["rows"][0]
    assert row["grown_from_cache"] == 120 and row["grown_labelled"] == 12 and row["same_texts_in_order"]
    assert row["same_labels"] == 1.0 and row["max_abs_prob_diff"] < 0.02
    assert out.with_suffix(".md").read_text().startswith("| rows |")
