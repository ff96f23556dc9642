"""stage=predict: every row back with its prediction; empty text kept and marked; thresholds; bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_stages import make_cfg  # noqa: F401  (fixture)

from distill.errors import DistillError
from distill.predictions import decide, predict_file
from distill.stages import label, predict, train

LABELS = ["negative", "positive"]


def fake_proba(texts, batch_size):
    """p(positive) = 0.9 for texts with 'good', 0.6 with 'fine', else 0.2."""
    p = np.array([0.9 if "good" in t else 0.6 if "fine" in t else 0.2 for t in texts], dtype=np.float32)
    return np.stack([1 - p, p], axis=1)


ROWS = pd.DataFrame({"id": [1, 2, 3, 4, 5], "sentence": ["good film", "", "fine", None, "awful"],
                     "extra": ["a", "b", "c", "d", "e"]})


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_row_comes_back_in_order_with_its_columns(tmp_path, ext):
    source = tmp_path / f"in{ext}"
    if ext == ".parquet":
        ROWS.to_parquet(source)
    elif ext == ".jsonl":
        ROWS.to_json(source, orient="records", lines=True)
    else:
        ROWS.to_csv(source, sep="\t" if ext == ".tsv" else ",", index=False)
    out = tmp_path / f"out{ext}"
    result = predict_file(source, out, fake_proba, LABELS, ["sentence"], batch_size=2)
    frame = {".csv": lambda p: pd.read_csv(p), ".tsv": lambda p: pd.read_csv(p, sep="\t"),
             ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[ext](out)
    assert list(frame["id"]) == [1, 2, 3, 4, 5] and list(frame["extra"]) == list("abcde")
    assert frame["text_missing"].tolist() == [False, True, False, True, False]
    assert frame["predicted_label"].iloc[[0, 2, 4]].tolist() == ["positive", "positive", "negative"]
    assert frame["predicted_label"].iloc[[1, 3]].isna().all() and frame["score"].iloc[[1, 3]].isna().all()
    assert frame["score"].iloc[0] == pytest.approx(0.9) and frame["prob_negative"].iloc[4] == pytest.approx(0.8)
    assert result["n_rows"] == 5 and result["n_missing_text"] == 2
    assert result["label_counts"] == {"negative": 1, "positive": 2}
    assert not list(tmp_path.glob("*.tmp"))


def test_threshold_trades_precision_for_recall(tmp_path):
    probs = fake_proba(["good", "fine", "bad"], 3)
    assert decide(probs, LABELS, None, None).tolist() == [1, 1, 0]
    assert decide(probs, LABELS, 0.7, None).tolist() == [1, 0, 0]  # 'fine' (0.6) no longer positive
    assert decide(probs, LABELS, 0.7, "negative").tolist() == [1, 1, 0]  # p(negative) >= 0.7 only for 'bad'
    with pytest.raises(DistillError, match="binary"):
        decide(np.full((1, 3), 1 / 3), ["a", "b", "c"], 0.5, None)
    with pytest.raises(DistillError, match="between 0 and 1"):
        decide(probs, LABELS, 1.5, None)


@pytest.mark.parametrize("content, columns, match", [
    ("a,b\n1,2\n", ["sentence"], r"column\(s\) 'sentence' not in .*columns: a, b"),
    ("", ["sentence"], r"could not read"),
])
def test_bad_input_is_one_clear_error_and_leaves_no_output(tmp_path, content, columns, match):
    source = tmp_path / "in.csv"
    source.write_text(content)
    with pytest.raises(DistillError, match=match):
        predict_file(source, tmp_path / "out.csv", fake_proba, LABELS, columns)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.tmp").exists()


def test_corrupt_parquet_and_unknown_extension(tmp_path):
    bad = tmp_path / "in.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DistillError, match="could not read"):
        predict_file(bad, tmp_path / "out.parquet", fake_proba, LABELS, ["sentence"])
    odd = tmp_path / "in.xlsx"
    odd.write_text("x")
    with pytest.raises(DistillError, match="extension"):
        predict_file(odd, tmp_path / "out.csv", fake_proba, LABELS, ["sentence"])


def test_stage_predict_with_the_trained_student_and_with_the_teacher(make_cfg, tmp_path):  # noqa: F811
    cfg = make_cfg("eval.variants=[torch]")
    label.run(cfg)
    train.run(cfg)
    source = tmp_path / "new.jsonl"
    ROWS.to_json(source, orient="records", lines=True)
    result = predict.run(make_cfg(f"input={source}"))
    out = pd.read_json(result["output"], lines=True)
    assert result["output"].endswith("predictions/new.predictions.jsonl") and len(out) == 5
    assert set(out["predicted_label"].dropna()) <= set(LABELS) and out["text_missing"].sum() == 2
    np.testing.assert_allclose(out[["prob_negative", "prob_positive"]].dropna().sum(axis=1), 1, atol=1e-5)
    teacher = predict.run(make_cfg(f"input={source}", "predict.model=teacher",
                                   f"predict.output={tmp_path / 'teacher.csv'}", "predict.threshold=0.5"))
    assert teacher["model"] == "deberta-v3-nli" and len(pd.read_csv(teacher["output"])) == 5


def test_stage_predict_errors(make_cfg, tmp_path):  # noqa: F811
    with pytest.raises(DistillError, match="needs a file"):
        predict.run(make_cfg())
    with pytest.raises(DistillError, match="no such file"):
        predict.run(make_cfg(f"input={tmp_path / 'nope.csv'}"))
    (tmp_path / "x.csv").write_text("sentence\nhi\n")
    with pytest.raises(DistillError, match="stage=train"):
        predict.run(make_cfg(f"input={tmp_path / 'x.csv'}"))
    with pytest.raises(DistillError, match="positive_label='spam'"):
        predict.run(make_cfg(f"input={tmp_path / 'x.csv'}", "predict.model=teacher", "predict.positive_label=spam"))


def test_cli_predict_is_a_one_line_error_without_input():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "distill", "stage=predict"], capture_output=True, text=True)
    assert proc.returncode == 2 and "distill: error: stage=predict needs a file" in proc.stderr
    assert "Traceback" not in proc.stderr
