"""A trained classifier as the teacher (teacher.kind=classifier, the teacher-assistant step) and
`python -m distill.where`, which a script uses to find the folder a stage wrote."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from test_stages import make_cfg  # noqa: F401  (a fixture)

from distill import artifacts
from distill.config import TeacherConfig
from distill.errors import DistillError
from distill.stages import label, train
from distill.students.load import load_classifier
from distill.teachers import build_teacher
from distill.teachers.classifier import label_order
from distill.where import main as where_main

from conftest import build_tiny_bert

TEXTS = ["the movie was great", "awful", "i think this plot is very good , really", "bad fun"]


def classifier_teacher(folder, labels, **overrides):
    cfg = TeacherConfig(name="assistant", kind="classifier", model=str(folder), device="cpu", **overrides)
    return build_teacher(cfg, labels)


def test_classifier_teacher_gives_the_classifier_probabilities_in_the_data_label_order(tmp_path):
    build_tiny_bert(tmp_path, {0: "negative", 1: "positive"})
    want = load_classifier(tmp_path, device="cpu").predict_proba(TEXTS)
    same = classifier_teacher(tmp_path, ["negative", "positive"]).predict_proba(TEXTS)
    np.testing.assert_allclose(same, want, atol=1e-6)
    swapped = classifier_teacher(tmp_path, ["Positive", "negative"]).predict_proba(TEXTS, batch_size=3)
    np.testing.assert_allclose(swapped, want[:, ::-1], atol=1e-6)
    assert classifier_teacher(tmp_path, ["negative", "positive"]).predict_proba([]).shape == (0, 2)


def test_classifier_teacher_errors_name_the_problem(tmp_path):
    build_tiny_bert(tmp_path, {0: "negative", 1: "positive"})
    with pytest.raises(DistillError, match=r"lacks data label\(s\) \['sports'\]"):
        classifier_teacher(tmp_path, ["negative", "sports"])
    with pytest.raises(DistillError, match="predicts 2 labels .* the data has 1"):
        label_order(["negative", "positive"], ["negative"], "m")
    with pytest.raises(DistillError, match="teacher.variant='int4' is not one of torch, onnx, onnx-int8"):
        classifier_teacher(tmp_path, ["negative", "positive"], variant="int4")
    with pytest.raises(DistillError, match="teacher.variant=onnx exports a local classifier folder"):
        classifier_teacher("someone/finetuned-sst2", ["negative", "positive"], variant="onnx")
    with pytest.raises(DistillError, match="holds no trained student"):
        classifier_teacher(tmp_path / "missing", ["negative", "positive"])
    with pytest.raises(DistillError, match="single-label"):
        classifier_teacher(tmp_path, ["negative", "positive"], multi_label=True)


def test_hub_id_that_cannot_be_reached_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DistillError, match="could not load 'nobody-here/no-such-classifier'"):
        classifier_teacher("nobody-here/no-such-classifier", ["negative", "positive"])


def test_a_trained_student_labels_a_larger_pool_as_teacher_assistant(make_cfg):  # noqa: F811
    """stage=label with teacher=assistant on the folder stage=train wrote; retraining that folder makes a
    new labelling (its contents are in the label key), rerunning the same one is a cache hit."""
    cfg = make_cfg()
    label.run(cfg)
    student = train.run(cfg)["student_dir"]
    assistant = make_cfg("teacher=assistant", f"teacher.model={student}", "teacher.variant=torch",
                         "data.pool_size=40")
    first = label.run(assistant)
    frame = pd.read_parquet(first["labels_path"])
    assert len(frame) == 40 and first["cached"] is False
    assert "assistant-pool-" in first["labels_path"]
    want = load_classifier(student, device="cpu").predict_proba(frame["text"].tolist())
    np.testing.assert_allclose(frame[["prob_negative", "prob_positive"]].to_numpy(), want, atol=1e-5)
    meta = json.loads((artifacts.labels_dir(assistant, "pool") / "meta.json").read_text())
    assert meta["teacher"]["kind"] == "classifier" and meta["teacher"]["variant"] == "torch"
    assert label.run(assistant)["cached"] is True
    before = artifacts.labels_dir(assistant, "pool")
    record = json.loads((artifacts.student_dir(cfg) / "distill_train.json").read_text())
    record["train_loss"] = 123.0  # as if retrained in place
    (artifacts.student_dir(cfg) / "distill_train.json").write_text(json.dumps(record))
    assert artifacts.labels_dir(assistant, "pool") != before
    assert label.run(assistant)["cached"] is False


def test_where_prints_the_artifact_paths_of_a_config(make_cfg, capsys):  # noqa: F811
    cfg = make_cfg()
    overrides = ["data=sst2", f"paths.data={cfg.paths.data}", f"paths.outputs={cfg.paths.outputs}",
                 f"teacher.model={cfg.teacher.model}", f"student.model={cfg.student.model}", "data.pool_size=32",
                 "train.epochs=1", "train.batch_size=8"]
    assert where_main(["student", *overrides]) == 0
    assert capsys.readouterr().out.strip() == str(artifacts.student_dir(cfg))
    assert where_main(["labels", *overrides]) == 0
    assert capsys.readouterr().out.strip() == str(artifacts.labels_file(cfg, "pool"))
    assert where_main(["model", *overrides]) == 2
    assert "unknown artifact 'model'" in capsys.readouterr().err
    assert where_main(["student", "train.epoch=3"]) == 2
    assert "unknown config key 'train.epoch'" in capsys.readouterr().err
    done = subprocess.run([sys.executable, "-m", "distill.where", "student", *overrides], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == str(artifacts.student_dir(cfg))
