"""The end of a labelling says how well the teacher separates the labels, and warns when it barely does."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from test_stages import make_cfg  # noqa: F401  (fixture)

from distill.labelstore import label_texts, separation, separation_line
from distill.teachers.base import Teacher


class Fixed(Teacher):
    def __init__(self, rows, multi_label=False):
        self.name, self.rows, self.multi_label = "fixed", np.asarray(rows, np.float32), multi_label
        self.labels = [f"l{i}" for i in range(self.rows.shape[1])]

    def predict_proba(self, texts, batch_size=None, progress=False):
        return np.stack([self.rows[i % len(self.rows)] for i in range(len(texts))])

    def describe(self):
        return {**super().describe(), "multi_label": self.multi_label}


def labelled(tmp_path, rows, multi_label=False):
    return label_texts([f"t{i}" for i in range(6)], lambda: Fixed(rows, multi_label), tmp_path / "l", {"x": 1},
                       shard_size=4).meta


def test_separation_by_hand():
    sep = separation(0.7, 0.4, 4)  # lift (0.7 - 0.25) / 0.75 = 0.6
    assert sep == {"mean_top1": 0.7, "mean_margin": 0.4, "uniform": 0.25, "lift": 0.6, "weak": False}
    assert separation(0.03, 0.004, 77)["weak"] and separation(0.03, 0.004, 77)["lift"] == pytest.approx(0.0171, abs=1e-4)


def test_a_teacher_that_cannot_tell_the_labels_apart_is_flagged(tmp_path, caplog):
    near_uniform = [[0.26, 0.25, 0.25, 0.24], [0.24, 0.27, 0.25, 0.24]]
    meta = labelled(tmp_path, near_uniform)
    sep = meta["separation"]
    assert sep["weak"] and sep["mean_top1"] == pytest.approx((0.26 * 3 + 0.27 * 3) / 6, abs=1e-4)
    assert sep["mean_margin"] == pytest.approx(0.015, abs=1e-4)  # 0.01 and 0.02, three times each
    line = separation_line(meta, "nli")
    assert "barely tells the 4 labels apart" in line and "0.250 for a blind guess" in line and "\n" not in line


def test_a_confident_teacher_and_a_multi_label_one_are_not_flagged(tmp_path):
    meta = labelled(tmp_path / "a", [[0.9, 0.1], [0.2, 0.8]])
    assert meta["separation"]["lift"] == pytest.approx(0.7, abs=1e-4) and separation_line(meta, "t") is None
    multi = labelled(tmp_path / "b", [[0.5, 0.5, 0.5]], multi_label=True)
    assert "separation" not in multi and separation_line(multi, "t") is None


def test_the_label_stage_warns(make_cfg, caplog):  # noqa: F811
    from distill.stages import label

    # a tiny random NLI model over twelve labels: next to a guess
    with caplog.at_level(logging.WARNING):
        result = label.run(make_cfg(f"data.labels=[{','.join('abcdefghijkl')}]"))
    assert result["separation"]["lift"] < 0.1
    assert any("barely tells the 12 labels apart" in r.getMessage() for r in caplog.records)
