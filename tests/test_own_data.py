"""A user's own file, no gold labels anywhere: data=file, distill init and the project file, label -> train ->
eval without gold, and every kind of bad row."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distill.config import load_config
from distill.data import has_gold, load_pool, stream_pool
from distill.errors import DistillError
from distill.stages import evaluate, label, run_stage, train

from conftest import WORDS

REVIEWS = ["a great movie , really fun", "boring story and bad actors", "i loved the plot", "what a dull game",
           "the team was great", "not fun at all", "a good film , very good", "bad , bad , bad"]


def write_reviews(path: Path, n: int = 40, blanks: tuple = (), gold: bool = False) -> Path:
    rows = [{"id": i, "review": "" if i in blanks else REVIEWS[i % len(REVIEWS)] + f" {WORDS[i % 30]}"}
            for i in range(n)]
    if gold:
        for row in rows:
            row["sentiment"] = "positive" if any(w in row["review"] for w in ("great", "loved", "good")) else "negative"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def own(tmp_path, tiny_nli_2way, tiny_encoder, monkeypatch):
    """A working directory holding reviews.csv; overrides that point the models at the tiny ones."""
    monkeypatch.chdir(tmp_path)
    write_reviews(tmp_path / "reviews.csv", blanks=(5,))
    return [f"teacher.model={tiny_nli_2way}", f"student.model={tiny_encoder}", "train.epochs=1",
            "train.batch_size=8", "eval.batch_sizes=[1,4]", "eval.bench_texts=8", "eval.warmup_batches=1",
            "eval.repeats=1"]


FILE = ["data=file", "data.pool.path=reviews.csv", "data.text_columns=[review]", "data.labels=[negative,positive]"]


def test_a_relative_path_is_read_from_the_working_directory_and_nothing_is_held_out(own, caplog):
    cfg = load_config(FILE + own)
    assert cfg.data.name == "reviews" and not has_gold(cfg.data)
    with caplog.at_level("WARNING"):
        pool = stream_pool(cfg.data, cfg.paths.data)
    assert len(pool) == 39 and pool.notes == {"n_rows": 40, "n_empty_skipped": 1}  # every text but the blank one
    assert "1 empty or blank text(s) skipped (row 6" in caplog.text
    assert 5 not in pool.rows and list(pool.rows[:6]) == [0, 1, 2, 3, 4, 6]


def test_label_train_eval_without_gold(own, caplog):
    cfg = load_config(FILE + own)
    out = label.run(cfg)
    frame = pd.read_parquet(out["labels_path"])
    assert len(frame) == 39 and "row" in frame.columns and 5 not in set(frame["row"])
    meta = json.loads((Path(out["labels_path"]).parent / "meta.json").read_text())
    assert meta["n_empty_skipped"] == 1 and meta["n_rows"] == 40
    trained = train.run(cfg)
    assert trained["holdout"] == {"fraction": 0.1, "seed": 42, "n_texts": 4}  # kept out, for eval
    assert trained["n_texts"] + trained["n_val"] == 35
    with caplog.at_level("WARNING", logger="distill.stages.evaluate"):
        result = evaluate.run(cfg)
    assert "rests on 4 unseen texts, good to about +-49 points" in caplog.text
    assert result["gold"] is False
    metrics = json.loads((Path(result["eval_dir"]) / "metrics.json").read_text())
    teacher, student = metrics["models"][0], metrics["models"][1]
    assert metrics["gold"] is False and metrics["n_heldout"] == 4 and metrics["n_pool"] == 39
    assert teacher["accuracy"] is None and 0 <= student["agreement_with_teacher"] <= 1
    assert set(student["confusion_vs_teacher"][0]) and "ece_vs_teacher" in student
    assert abs(sum(teacher["label_shares"].values()) - 1) < 1e-6 and teacher["confidence"]["mean"] >= 0.5
    report = Path(result["report"]).read_text()
    assert "no gold labels" in report and "agreement with the teacher" in report
    assert {"confidence.png", "label_shares.png"} <= {Path(p).name for p in result["plots"]}


def test_stage_all_runs_without_gold(own):
    result = run_stage(load_config(FILE + own))
    assert result["label"]["n_texts"] == 39 and result["eval"]["gold"] is False


def test_gold_in_the_same_file_adds_accuracy_on_a_held_out_share(own, tmp_path):
    write_reviews(tmp_path / "reviews.csv", gold=True)
    cfg = load_config(FILE + own + ["data.label_column=sentiment"])
    assert has_gold(cfg.data) and len(load_pool(cfg.data, ".")) == 32  # 20% held out to score, with gold
    result = run_stage(cfg)
    assert result["eval"]["gold"] is True and result["eval"]["student_accuracy"] is not None


@pytest.mark.parametrize("bad,message", [
    (["data.labels=[positive]"], "at least two"),
    (["data.pool.path=nothing.csv"], "data.pool.path: nothing.csv not found in the working directory"),
    (["data.text_columns=[body]"], "column 'body' not in"),
])
def test_bad_input_is_one_clear_error(own, bad, message):
    with pytest.raises(DistillError, match=message):
        label.run(load_config(FILE + own + bad))


def test_a_latin1_file_names_the_encoding_setting(own, tmp_path):
    (tmp_path / "latin.csv").write_bytes("review\n\"caf\xe9 cr\xe8me, tr\xe8s bon\"\n".encode("latin-1"))
    cfg = load_config(FILE + own + ["data.pool.path=latin.csv"])
    with pytest.raises(DistillError, match=r"latin.csv is not utf-8 text .*set data.encoding"):
        load_pool(cfg.data, ".")
    assert load_pool(load_config(FILE + own + ["data.pool.path=latin.csv", "data.encoding=latin-1"]).data,
                     ".") == ["café crème, très bon"]


def test_empty_texts_can_be_refused(own):
    with pytest.raises(DistillError, match=r"1 empty text\(s\) in .*row 6.*data.empty_texts=skip"):
        load_pool(load_config(FILE + own + ["data.empty_texts=error"]).data, ".")


def test_plain_text_and_labels_from_a_file(own, tmp_path):
    (tmp_path / "notes.txt").write_text("the plot was great\n\nbad actors\n", encoding="utf-8")
    (tmp_path / "labels.txt").write_text("negative\npositive\n", encoding="utf-8")
    cfg = load_config(["data=file", "data.pool.path=notes.txt", "data.labels_from=labels.txt", *own])
    assert list(cfg.data.labels) == ["negative", "positive"]
    assert load_pool(cfg.data, ".") == ["the plot was great", "bad actors"]


def test_a_datasets_folder(own, tmp_path):
    import datasets

    datasets.Dataset.from_dict({"review": REVIEWS}).save_to_disk(str(tmp_path / "saved"))
    cfg = load_config(["data=file", "data.pool.path=saved", "data.text_columns=[review]",
                       "data.labels=[negative,positive]", *own])
    assert cfg.data.name == "saved" and load_pool(cfg.data, ".") == REVIEWS


def run_cli(cwd, *args):
    return subprocess.run([sys.executable, "-m", "distill", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_init_writes_a_project_file_that_every_later_command_starts_from(own, tmp_path):
    done = run_cli(tmp_path, "init", "reviews.csv", "--labels", "negative,positive")
    assert done.returncode == 0, done.stderr
    assert "40 rows, text from review, 1 empty" in done.stdout and "no gold labels" in done.stdout
    assert "pool: {path: reviews.csv}" in (tmp_path / "distill.yaml").read_text()
    job = run_cli(tmp_path, "--cfg", "job")
    assert "name: ${stem:${data.pool.path}}" in job.stdout and "- review" in job.stdout
    labelled = run_cli(tmp_path, "stage=label", *own[:1])
    assert labelled.returncode == 0, labelled.stderr[-2000:]
    assert list((tmp_path / "outputs" / "labels" / "reviews").glob("*/labels.parquet"))
    again = run_cli(tmp_path, "init", "reviews.csv", "--labels", "negative,positive")
    assert again.returncode == 2 and "exists already" in again.stderr


def test_init_multi_label(own, tmp_path):
    done = run_cli(tmp_path, "init", "reviews.csv", "--labels", "angry,sad,calm", "--multi-label",
                   "--none-label", "calm")
    assert done.returncode == 0, done.stderr
    assert "(several a text)" in done.stdout
    job = run_cli(tmp_path, "--cfg", "job").stdout
    assert "multi_label: true" in job and "none_label: calm" in job


@pytest.mark.parametrize("args,message", [
    (["reviews.csv", "--labels", "positive"], "is 1 label"),
    (["reviews.csv"], "give the label names"),
    (["reviews.csv", "--labels", "a,b", "--text", "body"], "--text body: no such column"),
    (["reviews.csv", "--labels", "a,b", "--none-label", "a"], "--none-label is for multi-label data"),
    (["reviews.csv", "--labels", "a,b", "--multi-label", "--none-label", "c"], "--none-label c is not one of"),
])
def test_init_errors(own, tmp_path, args, message):
    done = run_cli(tmp_path, "init", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_a_preset_of_ones_own_from_config_dir(own, tmp_path):
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "mine.yaml").write_text(
        "pool: {path: reviews.csv}\ntext_columns: [review]\nlabels: [negative, positive]\nname: mine\n")
    for where in (["--config-dir", "conf"], [f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]):
        done = run_cli(tmp_path, *where, "data=mine", "--cfg", "job")
        assert done.returncode == 0, done.stderr
        assert "name: mine" in done.stdout and "path: reviews.csv" in done.stdout


def test_help_and_version(tmp_path):
    helped = run_cli(tmp_path, "--help")
    assert helped.returncode == 0 and "stages (stage=...):" in helped.stdout and "distill init" in helped.stdout
    assert "schema" not in helped.stdout and "powered by Hydra" not in helped.stdout
    version = run_cli(tmp_path, "--version")
    assert version.stdout.startswith("distill ") and "torch" in version.stdout and "transformers" in version.stdout


# --- the Python API -----------------------------------------------------------------------------------

def test_python_api_label_train_predict(own, tmp_path):
    import datasets

    import distill

    settings = [o for o in own if o.startswith(("teacher.", "train."))] + ["student.model=" + own[1].split("=", 1)[1]]
    texts = pd.Series(REVIEWS * 4 + [""])
    labels = distill.label(texts, ["negative", "positive"], overrides=settings)
    assert list(labels.columns) == ["row", "text", "prob_negative", "prob_positive", "label", "confidence"]
    assert len(labels) == 32 and 32 not in set(labels["row"])  # the empty text is skipped, rows point back
    again = distill.label(datasets.Dataset.from_dict({"body": REVIEWS * 4 + [""]}), ["negative", "positive"],
                          column="body", overrides=settings)
    assert again.attrs["labels_path"] == labels.attrs["labels_path"]  # the same texts: a cache hit
    labels.loc[0, ["prob_negative", "prob_positive"]] = [1.0, 0.0]  # a correction
    student = distill.train(labels, overrides=settings)
    assert student.path.is_dir() and student.labels == ["negative", "positive"]
    assert set(student.predict(["a great film", "so dull"])) <= {"negative", "positive"}
    probs = student.predict_proba(pd.DataFrame({"text": ["fun", "bad"]}))
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert distill.load(student.path).predict(["fun"]) == student.predict(["fun"])
    with pytest.raises(DistillError, match="at least two labels"):
        distill.label(["fun"], ["positive"], overrides=settings)
    with pytest.raises(DistillError, match="text 1 .* is empty"):
        student.predict(["fun", "  "])
