"""Multi-label: label sets, their scores against hand-computed values, and the rules that make sets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_stages import make_cfg  # noqa: F401  (fixture)

from distill.errors import DistillError
from distill.evaluation import multilabel as ml

LABELS = ["anger", "joy", "sadness"]


def test_scores_by_hand():
    gold = np.array([[1, 0, 1], [0, 1, 0]])
    pred = np.array([[1, 0, 0], [0, 1, 1]])
    probs = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.6]])
    r = ml.report(probs, pred, gold, LABELS)
    # TP 2 (anger row 1, joy row 2), FP 1 (sadness row 2), FN 1 (sadness row 1)
    assert r["micro_f1"] == pytest.approx(2 / 3) and r["accuracy"] == r["micro_f1"]
    assert r["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)
    assert r["subset_accuracy"] == 0.0 and r["hamming_loss"] == pytest.approx(2 / 6)
    # average precision: anger 1, joy 1, sadness 0.5 (its one positive ranked below the negative)
    assert r["map"] == pytest.approx(2.5 / 3)
    assert r["cardinality"] == 1.5 and r["gold_cardinality"] == 1.5
    assert r["per_class"]["sadness"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_class"]["anger"]["f1"] == 1.0
    assert ml.set_agreement(pred, gold) == pytest.approx(2 / 3)
    # the confusion view: anger's one text got anger; joy's got joy and sadness; sadness's got anger
    assert r["set_confusion"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]


def test_two_labels_above_the_threshold_are_both_predicted():
    """What a softmax student cannot do: 0.9 and 0.8 both in the set."""
    sets = ml.threshold(np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.1]]), 0.5)
    assert ml.names_of(sets, LABELS) == [["anger", "joy"], ["joy"]]  # the second: none reaches it, the top one
    per_label = ml.threshold(np.array([[0.9, 0.8, 0.1]]), [0.95, 0.5, 0.05])
    assert per_label.tolist() == [[0, 1, 1]]


def test_relative_sets_and_indicators():
    probs = np.array([[0.8, 0.5, 0.3], [0.1, 0.05, 0.02]])
    assert ml.relative_sets(probs, 0.5).tolist() == [[1, 1, 0], [1, 1, 0]]
    assert ml.indicators([["joy"], ["anger", "sadness"], []], LABELS).tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]
    with pytest.raises(DistillError, match="label 'fear' \\(row 1\\) is not one of data.labels"):
        ml.indicators([["fear"]], LABELS)
    with pytest.raises(DistillError, match="ratio in \\(0, 1\\]"):
        ml.relative_sets(probs, 1.5)


def test_rule_sets():
    probs = np.array([[0.9, 0.5, 0.3], [0.2, 0.1, 0.05]])
    assert ml.rule_sets(probs, "relative:0.5").tolist() == [[1, 1, 0], [1, 1, 0]]
    assert ml.rule_sets(probs, "threshold:0.4").tolist() == [[1, 1, 0], [1, 0, 0]]
    assert ml.rule_sets(probs, "top:2").tolist() == [[1, 1, 0], [1, 1, 0]]
    for bad in ("half", "relative:2", "top:0", "threshold:x"):
        with pytest.raises(DistillError, match=f"teacher.label_sets='{bad}'"):
            ml.rule_sets(probs, bad)


def test_rate_sets_rank_each_label_against_itself():
    """rate:R ranks each label over the texts: a label the teacher scores high everywhere (the first) is not in
    every set, and a label scored low everywhere (the third) still is where it is highest."""
    probs = np.array([[0.95, 0.40, 0.02], [0.90, 0.10, 0.09], [0.92, 0.45, 0.03], [0.80, 0.05, 0.05]])
    # the last text is no label's top one: it gets the label it ranks highest on among the texts (the third)
    assert ml.rule_sets(probs, "rate:0.25").tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert ml.rule_sets(probs, "rate:auto").tolist() == ml.rule_sets(probs, f"rate:{1 / 3}").tolist()
    assert ml.rate_sets(np.zeros((0, 3)), 0.5).shape == (0, 3)
    flat = np.array([[0.0, 0.9], [0.0, 0.1], [0.0, 0.2], [0.0, 0.3]])  # a label scored 0 everywhere is on nowhere
    assert ml.rate_sets(flat, 0.5)[:, 0].tolist() == [0, 0, 0, 0]
    # ... nor is it the fallback of the texts no label reached (ties rank alike, not by row order)
    assert ml.rule_sets(flat, "rate:0.25")[:, 0].tolist() == [0, 0, 0, 0]
    for bad in ("rate:1", "rate:0", "rate:many"):
        with pytest.raises(DistillError, match=f"teacher.label_sets='{bad}'.*rate:auto"):
            ml.rule_sets(probs, bad)


def test_the_none_label_is_the_absence_of_the_others():
    """data.none_label (GoEmotions' neutral): in a set exactly when no other label is, whatever its own score."""
    probs = np.array([[0.9, 0.1, 0.99], [0.2, 0.1, 0.01], [0.6, 0.55, 0.3]])
    none = 2
    assert ml.rule_sets(probs, "threshold:0.5", none=none).tolist() == [[1, 0, 0], [0, 0, 1], [1, 1, 0]]
    # relative and top always pick a label: the none label's own score takes part, and it comes alone
    assert ml.rule_sets(probs, "relative:0.5", none=none).tolist() == [[0, 0, 1], [1, 1, 0], [1, 1, 0]]
    assert ml.rule_sets(probs, "top:2", none=none).tolist() == [[0, 0, 1], [1, 1, 0], [1, 1, 0]]
    assert ml.rule_sets(probs, "rate:0.34", none=none).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    # a student's thresholds: a text no label reaches gets the none label, not its most probable one
    assert ml.threshold(probs, [0.7, 0.7, 0.05], none=none).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]


def test_none_label_errors(make_cfg):  # noqa: F811
    from distill.config import load_config, none_index

    cfg = load_config(["data=goemotions", "data.none_label=calm"])
    with pytest.raises(DistillError, match="data.none_label=calm is not one of data.labels"):
        none_index(cfg)
    assert none_index(load_config(["data=goemotions", "data.none_label=neutral"])) == 27
    with pytest.raises(DistillError, match="data.none_label=positive is for multi-label runs"):
        none_index(load_config(["data=sst2", "data.none_label=positive"]))


def test_thresholds_reproduce_the_teachers_sets():
    from distill.students.finetune import fit_thresholds

    probs = np.array([[0.9, 0.2], [0.7, 0.6], [0.3, 0.65], [0.1, 0.1]])
    sets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    t = fit_thresholds(probs, sets)
    assert ml.threshold(probs, t)[:3].tolist() == sets[:3].tolist()
    assert fit_thresholds(probs, sets, "f1") == t  # here the best F1 is the teacher's rate too
    # a label never given: above every validation text (rate), 0.5 (f1)
    assert fit_thresholds(probs, np.zeros((4, 2), int)) == [0.95, 0.825]
    assert fit_thresholds(probs, np.zeros((4, 2), int), "f1") == [0.5, 0.5]


def test_rate_thresholds_keep_the_teachers_labels_a_text():
    """A student that ranks right but is unsure everywhere: the F1 cut lets the rare label onto most texts, the
    rate cut onto as many as the teacher gave it (2 of 10)."""
    from distill.students.finetune import fit_thresholds

    probs = np.array([[0.30], [0.28], [0.27], [0.26], [0.25], [0.24], [0.23], [0.22], [0.21], [0.20]])
    sets = np.array([[1], [0], [1], [0], [0], [0], [0], [0], [0], [0]])
    assert (probs >= fit_thresholds(probs, sets)).sum() == 2
    assert (probs >= fit_thresholds(probs, sets, "f1")).sum() == 3  # F1 0.8 at 3 texts, 0.67 at 2
    # tied probabilities across the teacher's count: the whole tied block or none of it, whichever is nearer
    tied = np.array([[0.9], [0.5], [0.5], [0.5], [0.1], [0.1]])
    assert (tied >= fit_thresholds(tied, np.array([[1], [1], [0], [0], [0], [0]]))).sum() == 1
    assert (tied >= fit_thresholds(tied, np.array([[1], [1], [1], [0], [0], [0]]))).sum() == 4
    with pytest.raises(DistillError, match="train.thresholds='median' is not one of rate, f1"):
        fit_thresholds(probs, sets, "median")


def test_gold_label_sets_from_ids_names_and_lists(tmp_path):
    import json

    from distill.config import SourceConfig, load_config
    from distill.data import load_heldout

    (tmp_path / "g.tsv").write_text("text\tgold\na\t0,2\nb\tjoy\nc\t\n", encoding="utf-8")
    cfg = load_config(["data=file", f"data.pool.path={tmp_path / 'g.tsv'}", "data.label_column=gold",
                       "data.multi_label=true", "data.labels=[anger,joy,sadness]"])
    cfg.data.label_map = {"0": "anger", "2": "sadness"}
    cfg.data.heldout = SourceConfig(path=str(tmp_path / "g.tsv"))
    assert cfg.teacher.multi_label is True  # the teacher follows the data
    held = load_heldout(cfg.data, tmp_path)
    assert dict(zip(held.texts, held.gold)) == {"a": ["anger", "sadness"], "b": ["joy"], "c": []}  # c: an empty set
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(r) + "\n" for r in
                                              [{"text": "a", "gold": ["joy", "anger"]}, {"text": "b", "gold": []}]))
    cfg.data.heldout.path = str(tmp_path / "g.jsonl")
    assert load_heldout(cfg.data, tmp_path).gold == [["joy", "anger"], []]
    (tmp_path / "bad.tsv").write_text("text\tgold\na\t0,7\nb\t0\n", encoding="utf-8")
    cfg.data.heldout.path = str(tmp_path / "bad.tsv")
    with pytest.raises(DistillError, match="gold value '7' in .*bad.tsv \\(row 1, in '0,7'\\) is not a label"):
        load_heldout(cfg.data, tmp_path)


def test_goemotions_preset_reads_label_sets():
    from distill.config import load_config
    from distill.data import load_heldout

    from conftest import require_shared

    data = require_shared("data").parent / "data"
    cfg = load_config(["data=goemotions"])
    held = load_heldout(cfg.data, data)
    assert len(held.texts) == 1085 and len(cfg.data.labels) == 28 and cfg.teacher.multi_label
    assert 0.1 < np.mean([len(g) > 1 for g in held.gold]) < 0.25  # 16% of GoEmotions texts carry two or more


def test_multi_label_run_end_to_end(make_cfg):  # noqa: F811
    """label -> train -> eval with data.multi_label: a sigmoid student with thresholds, its ONNX export equal to
    it, and a multi-label report."""
    import json
    from pathlib import Path

    from distill import artifacts
    from distill.stages import stage_run
    from distill.students.load import load_classifier

    cfg = make_cfg("data.multi_label=true", "teacher.label_sets=top:1", "eval.variants=[torch,onnx]")
    assert cfg.teacher.multi_label
    stage_run("label")(cfg)
    trained = stage_run("train")(cfg)
    folder = Path(trained["student_dir"])
    config = json.loads((folder / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and len(config["distill_thresholds"]) == 2
    assert json.loads((folder / "distill_train.json").read_text())["multi_label"] is True
    student = load_classifier(folder)
    probs = student.predict_proba(["a fine film", "dull"])
    assert student.multi_label and probs.shape == (2, 2) and not np.allclose(probs.sum(1), 1.0)  # a sigmoid a label
    result = stage_run("eval")(cfg)
    metrics = json.loads((Path(result["eval_dir"]) / "metrics.json").read_text())
    assert metrics["multi_label"] is True
    names = [m["name"] for m in metrics["models"]]
    assert names[0] == "deberta-v3-nli" and any(n.endswith("onnx") for n in names)
    torch_row, onnx_row = metrics["models"][1], metrics["models"][2]
    assert onnx_row["micro_f1"] == pytest.approx(torch_row["micro_f1"], abs=0.05)  # the export is the same model
    assert {"micro_f1", "macro_f1", "map", "subset_accuracy", "hamming_loss", "cardinality",
            "agreement_with_teacher"} <= set(torch_row)
    report = Path(result["report"]).read_text()
    assert "multi-label" in report and "micro-F1" in report
    assert "label_f1.png" in report and "label_confusion.png" in report
    assert artifacts.student_dir(cfg) == folder

    # predict: a label set a row (the student's thresholds, or predict.threshold for every label)
    new = Path(cfg.paths.outputs).parent / "new.csv"
    pd.DataFrame({"sentence": ["a fine film", "", "dull and long"]}).to_csv(new, index=False)
    out = pd.read_csv(stage_run("predict")(make_cfg("data.multi_label=true", "teacher.label_sets=top:1",
                                                    f"input={new}"))["output"])
    assert out["predicted_labels"].isna().tolist() == [False, True, False] and out["text_missing"].tolist()[1]
    assert set(out["predicted_labels"].dropna().str.split(",").sum()) <= {"negative", "positive"}
    everything = pd.read_csv(stage_run("predict")(make_cfg("data.multi_label=true", "teacher.label_sets=top:1",
                                                           f"input={new}", "predict.threshold=0.001",
                                                           f"predict.output={new.with_name('all.csv')}"))["output"])
    assert everything["predicted_labels"].dropna().tolist() == ["negative,positive"] * 2  # both, as no softmax can
    top = pd.read_csv(stage_run("predict")(make_cfg("data.multi_label=true", "teacher.label_sets=top:1",
                                                    f"input={new}", "predict.top_k=1",
                                                    f"predict.output={new.with_name('top.csv')}"))["output"])
    assert [len(s.split(",")) for s in top["predicted_labels"].dropna()] == [1, 1]
    with pytest.raises(DistillError, match="predict.top_k=1 and predict.threshold=0.5 are two ways"):
        stage_run("predict")(make_cfg("data.multi_label=true", "teacher.label_sets=top:1", f"input={new}",
                                      "predict.top_k=1", "predict.threshold=0.5"))
    # the same labels with another set rule make another student (its targets and thresholds differ)
    assert artifacts.student_dir(make_cfg("data.multi_label=true", "teacher.label_sets=top:2")) != folder

    # publish (dry run): the repo folder keeps the thresholds, the card says multi-label and gives micro-F1
    repo = Path(cfg.paths.outputs).parent / "repo"
    published = stage_run("publish")(make_cfg("data.multi_label=true", "teacher.label_sets=top:1", "hub.dry_run=true",
                                              "hub.repo_id=me/multi", f"hub.out_dir={repo}"))
    config = json.loads((repo / "config.json").read_text())
    assert published["uploaded"] is False and config["problem_type"] == "multi_label_classification"
    assert len(config["distill_thresholds"]) == 2
    card = (repo / "README.md").read_text()
    assert "- multi-label" in card and "**multi-label**" in card and "distill_thresholds" in card
    assert "| model | role | micro-F1 | macro-F1 |" in card and "Micro-F1" in card
    # the card's own snippet, run on the folder: a label set by the saved thresholds
    snippet = card.split("```python\n")[1].split("```")[0].replace('"me/multi"', repr(str(repo)))
    scope = {}
    exec(snippet, scope)
    assert set(scope["labels"]) <= {"negative", "positive"}


def test_the_none_label_is_saved_with_the_student_and_used_after(make_cfg):  # noqa: F811
    """data.none_label is kept in the student's config.json: predict and eval make its sets as it was trained,
    whatever a later run's data.none_label says."""
    import json
    from pathlib import Path

    from distill.stages import stage_run
    from distill.students.folder import none_index_of

    cfg = make_cfg("data.multi_label=true", "data.none_label=negative", "teacher.label_sets=threshold:0.5",
                   "eval.variants=[torch]")
    stage_run("label")(cfg)
    folder = Path(stage_run("train")(cfg)["student_dir"])
    assert json.loads((folder / "config.json").read_text())["distill_none_label"] == "negative"
    assert none_index_of(folder) == 0
    metrics = json.loads((Path(stage_run("eval")(cfg)["eval_dir"]) / "metrics.json").read_text())
    for model in metrics["models"]:  # a set holds the none label only when it holds nothing else
        assert model["cardinality"] >= 1.0
    # the teacher's rate rule needs a whole file: predict with the teacher refuses it in one line
    new = Path(cfg.paths.outputs).parent / "new.csv"
    pd.DataFrame({"sentence": ["a fine film"]}).to_csv(new, index=False)
    with pytest.raises(DistillError, match="teacher.label_sets=rate:auto ranks each label over a whole"):
        stage_run("predict")(make_cfg("data.multi_label=true", "teacher.label_sets=rate:auto", "predict.model=teacher",
                                      f"input={new}"))
    # a none label on a single-label run is a one-line error at train
    with pytest.raises(DistillError, match="data.none_label=negative is for multi-label runs"):
        stage_run("train")(make_cfg("data.none_label=negative"))


def test_multi_label_refuses_what_it_cannot_do(make_cfg):  # noqa: F811
    from distill.stages import stage_run

    cfg = make_cfg("data.multi_label=true", "train.class_balance=true")
    stage_run("label")(cfg)
    with pytest.raises(DistillError, match="train.label_balance \\(on by default\\) weighs each label"):
        stage_run("train")(cfg)
    with pytest.raises(DistillError, match="train.trainer=txtai is single-label only"):
        stage_run("train")(make_cfg("data.multi_label=true", "train.trainer=txtai"))


def test_the_embedding_lr_student_is_one_vs_rest(make_cfg):  # noqa: F811
    """student.kind=embedding_lr on multi-label data: a logistic regression a label, a sigmoid a label, its
    thresholds and none label in distill_student.json, scored and predicted like a fine-tuned student."""
    import json
    from pathlib import Path

    from distill.stages import stage_run
    from distill.students.folder import none_index_of, thresholds_of
    from distill.students.load import load_classifier

    cfg = make_cfg("data.multi_label=true", "student.kind=embedding_lr", "student.layers=null",
                   "teacher.label_sets=threshold:0.5", "data.none_label=negative", "eval.variants=[torch]")
    stage_run("label")(cfg)
    folder = Path(stage_run("train")(cfg)["student_dir"])
    spec = json.loads((folder / "distill_student.json").read_text())
    assert spec["multi_label"] is True and spec["none_label"] == "negative" and len(spec["thresholds"]) == 2
    assert thresholds_of(folder) == spec["thresholds"] and none_index_of(folder) == 0
    probs = load_classifier(folder).predict_proba(["a fine film", "dull", "fine"])
    assert probs.shape == (3, 2) and not np.allclose(probs.sum(1), 1.0)  # a sigmoid a label, not a softmax
    metrics = json.loads((Path(stage_run("eval")(cfg)["eval_dir"]) / "metrics.json").read_text())
    assert metrics["multi_label"] is True and {"micro_f1", "map"} <= set(metrics["models"][1])


def test_stage_review_is_single_label_and_says_so(make_cfg):  # noqa: F811
    from distill.stages import stage_run

    with pytest.raises(DistillError, match="stage=review asks for one label a text"):
        stage_run("review")(make_cfg("data.multi_label=true"))


def test_the_label_file_keeps_each_texts_set_and_follows_the_rule_without_relabelling(make_cfg):  # noqa: F811
    import json

    from distill import artifacts
    from distill.stages import stage_run

    first = stage_run("label")(make_cfg("data.multi_label=true", "teacher.label_sets=top:1"))
    frame = pd.read_parquet(first["labels_path"])
    assert frame["labels"].tolist() == frame["label"].tolist()  # top:1: the one most probable label
    cfg = make_cfg("data.multi_label=true", "teacher.label_sets=top:2")
    again = stage_run("label")(cfg)
    assert again["cached"] is True and again["labels_path"] == first["labels_path"]
    both = pd.read_parquet(again["labels_path"])
    assert set(both["labels"]) == {"negative,positive"}
    np.testing.assert_array_equal(both["prob_positive"], frame["prob_positive"])  # nothing relabelled
    meta = json.loads((artifacts.labels_dir(cfg, "pool") / "meta.json").read_text())
    assert meta["label_sets"]["rule"] == "top:2" and meta["labels_a_text"] == 2.0


def test_multi_label_without_gold_scores_students_against_the_teachers_sets(make_cfg):  # noqa: F811
    import json
    from pathlib import Path

    from distill.stages import stage_run

    cfg = make_cfg("data.multi_label=true", "data.label_column=null", "eval.variants=[torch]")
    stage_run("label")(cfg)
    stage_run("train")(cfg)
    result = stage_run("eval")(cfg)
    metrics = json.loads((Path(result["eval_dir"]) / "metrics.json").read_text())
    assert metrics["multi_label"] is True and metrics["gold"] is False
    student = metrics["models"][1]
    assert 0 <= student["agreement_with_teacher"] <= 1 and "micro_f1" not in student
    report = Path(result["report"]).read_text()
    assert "agreement with the teacher's label sets" in report
    assert "mean confidence" not in report  # a single-label measure: not said of label sets
