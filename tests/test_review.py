"""The review loop: the queue a person fills in, their answers read back, intervals and the paired test
against hand-computed values, and the whole loop on a user's own file with tiny models."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_own_data import FILE, own  # noqa: F401  (own: the tiny-model fixture for a user's file)

from distill.config import load_config
from distill.errors import DistillError
from distill.evaluation.intervals import (
    accuracy_interval,
    describe_difference,
    macro_f1_interval,
    paired_comparison,
    wilson,
)
from distill.review.answers import answer_files, read_answers, with_answers
from distill.review.queue import Candidates, compose
from distill.stages import run_stage
from distill.teachers.base import top_margin

LABELS = ["negative", "positive"]


# --- intervals -----------------------------------------------------------------------------------------

def test_wilson_interval_matches_the_formula():
    z, n, k = 1.959963984540054, 100, 80
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = wilson(k, n)
    assert low == pytest.approx(centre - half, abs=1e-9) and high == pytest.approx(centre + half, abs=1e-9)
    assert wilson(0, 0) is None and wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert accuracy_interval(np.array([1, 1, 0, 0]), np.array([1, 1, 1, 0])) == wilson(3, 4)


def test_mcnemar_exact_p_and_the_paired_interval():
    gold = np.ones(100, dtype=int)
    a = np.ones(100, dtype=int)
    b = np.ones(100, dtype=int)
    a[:3] = 0       # 3 texts only b gets right
    b[3:13] = 0     # 10 texts only a gets right
    a[13:20] = b[13:20] = 0  # 7 both wrong
    c = paired_comparison(a, b, gold)
    assert (c["only_a_right"], c["only_b_right"], c["n"]) == (10, 3, 100)
    assert c["p_value"] == pytest.approx(2 * (1 + 13 + 78 + 286) / 2 ** 13)  # two-sided exact binomial, 13 pairs
    se = math.sqrt(13 - 7 ** 2 / 100) / 100
    assert c["difference"] == pytest.approx(0.07)
    assert c["ci"] == pytest.approx([0.07 - 1.959963984540054 * se, 0.07 + 1.959963984540054 * se])
    assert describe_difference(c) == "student - teacher: +7.0 pt (95% CI +0.1 to +13.9), p = 0.092"
    assert paired_comparison(a, a, gold)["p_value"] == 1.0


def test_macro_f1_bootstrap_interval_is_seeded_and_brackets_the_score():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 300)
    pred = np.where(rng.random(300) < 0.7, gold, rng.integers(0, 3, 300))
    from sklearn.metrics import f1_score

    f1 = f1_score(gold, pred, average="macro")
    low, high = macro_f1_interval(pred, gold, 3)
    assert low < f1 < high and 0.05 < high - low < 0.2
    assert macro_f1_interval(pred, gold, 3) == (low, high)


# --- the queue -----------------------------------------------------------------------------------------

def candidates(n: int = 200, seed: int = 0) -> Candidates:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    teacher = np.stack([1 - p, p], 1)
    student = teacher.copy()
    student[:20] = student[:20, ::-1]  # the student disagrees on the first 20
    unseen = np.zeros(n, dtype=bool)
    unseen[rng.choice(n, 40, replace=False)] = True
    texts = [f"text {i}" for i in range(n)]
    texts[-1] = texts[-2]  # a duplicate text
    votes = {"nli": [LABELS[int(x > 0.5)] for x in p], "words": [None if i % 3 else LABELS[i % 2] for i in range(n)]}
    noisy = np.zeros(n, dtype=bool)
    noisy[[50, 60]] = True
    return Candidates(texts=texts, teacher=teacher, labels=LABELS, ids=np.arange(n), student=student, unseen=unseen,
                      votes=votes, noisy=noisy, suggested=[LABELS[0]] * n)


def test_queue_mixes_a_seeded_random_part_from_unseen_texts_with_chosen_ones():
    c = candidates()
    queue = compose(c, size=60, n_random=20, seed=0)
    assert list(queue.columns[:4]) == ["part", "why", "id", "text"] and queue["gold"].eq("").all()
    assert {"teacher_label", "teacher_prob", "student_label", "student_prob", "vote.nli", "vote.words",
            "noise_suggests"} <= set(queue.columns)
    random, chosen = queue[queue.part == "random"], queue[queue.part == "chosen"]
    assert len(random) == 20 and len(chosen) == 40
    assert c.unseen[random["id"]].all() and not c.unseen[chosen["id"]].any()  # the estimate: texts no student saw
    assert queue["text"].is_unique and queue["id"].is_unique
    # every reason gets its turn, and the least sure of the teacher's labels come first
    reasons = chosen["why"].str.split(";").str[0]
    assert {"teacher unsure (lowest margin)", "student disagrees with teacher", "sources disagree",
            "noise filter doubts the label"} <= set(reasons)
    seen = np.flatnonzero(~c.unseen)
    lowest = seen[np.argsort(top_margin(c.teacher[seen]))[:5]]
    assert set(lowest) <= set(chosen["id"])
    assert set(chosen[chosen.why.str.contains("noise")]["noise_suggests"].dropna()) <= {"negative"}
    # seeded: the same seed gives the same queue, another seed another random sample
    assert compose(c, 60, 20, seed=0).equals(queue)
    other = compose(c, 60, 20, seed=1)
    assert set(other[other.part == "random"]["id"]) != set(random["id"])


def test_a_second_round_leaves_out_what_was_answered_and_never_repeats_a_text():
    c = candidates()
    first = compose(c, 60, 20, seed=0)
    second = compose(c, 60, 20, seed=0, reviewed=set(first["text"]))
    assert not set(first["text"]) & set(second["text"])
    everything = compose(c, 500, 40, seed=0)
    assert everything["text"].is_unique and len(everything) == 199  # 200 texts, one of them twice
    assert (everything.part == "random").sum() == 40


def test_without_unseen_texts_the_random_part_comes_from_all_and_chosen_from_the_rest():
    c = candidates()
    c.unseen, c.student = None, None
    queue = compose(c, 30, 10, seed=0)
    assert (queue.part == "random").sum() == 10 and queue["text"].is_unique
    with pytest.raises(ValueError):
        compose(c, 10, 11, seed=0)


# --- answers -------------------------------------------------------------------------------------------

def test_answers_skip_blank_cells_accept_case_and_name_the_row_of_a_wrong_label(tmp_path):
    path = tmp_path / "round-1.csv"
    pd.DataFrame({"part": ["random", "chosen", "random", "chosen"], "text": ["a", "b", "c", "d"],
                  "gold": ["positive", "", " Negative ", "positive"]}).to_csv(path, index=False)
    answers = read_answers([path], LABELS)
    assert answers.texts == ["a", "c", "d"] and answers.gold == ["positive", "negative", "positive"]
    assert answers.n_blank == 1 and list(answers.part("random")) == [0, 1]
    pd.DataFrame({"text": ["a", "b"], "gold": ["positive", "neutral"]}).to_csv(path, index=False)
    with pytest.raises(DistillError, match=r"round-1.csv, row 3: gold 'neutral' is not one of the labels"):
        read_answers([path], LABELS)
    pd.DataFrame({"text": ["a", "a"], "gold": ["positive", "negative"]}).to_csv(path, index=False)
    with pytest.raises(DistillError, match="answered 'positive' at .*row 2 and 'negative' here"):
        read_answers([path], LABELS)
    pd.DataFrame({"review": ["a"], "gold": ["positive"]}).to_csv(path, index=False)
    with pytest.raises(DistillError, match="has no 'text' column"):
        read_answers([path], LABELS)
    given = tmp_path / "mine.jsonl"
    given.write_text('{"text": "x", "gold": "negative"}\n')
    assert read_answers([given], LABELS).parts == ["given"]  # no part column: training only, never an estimate


def test_answer_files_auto_folder_file_and_none(tmp_path):
    assert answer_files("auto", tmp_path / "nowhere") == [] and answer_files(None, tmp_path) == []
    (tmp_path / "round-1.csv").write_text("text,gold\n")
    (tmp_path / "round-1.jsonl").write_text("")
    assert answer_files("auto", tmp_path) == [tmp_path / "round-1.csv"]
    assert len(answer_files(str(tmp_path), tmp_path)) == 2
    with pytest.raises(DistillError, match="no such file or folder"):
        answer_files(str(tmp_path / "missing.csv"), tmp_path)


def test_chosen_answers_join_training_and_random_ones_stay_out(tmp_path):
    path = tmp_path / "a.csv"
    pd.DataFrame({"part": ["random", "chosen", "given"], "text": ["t0", "t1", "new"],
                  "gold": ["negative", "negative", "positive"]}).to_csv(path, index=False)
    answers = read_answers([path], LABELS)
    probs = np.array([[0.2, 0.8], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    texts, p, w, stats = with_answers(["t0", "t1", "t2"], probs, None, answers, gold_weight=2.0)
    assert texts == ["t1", "t2", "new"]
    assert p.tolist() == [[1, 0], [0.6000000238418579, 0.4000000059604645], [0, 1]]
    assert w.tolist() == [2.0, 1.0, 2.0]
    assert stats == {"answers_trained_on": 2, "answers_added": 1, "random_answers_kept_out": 1}
    with pytest.raises(DistillError, match="review.gold_weight"):
        with_answers(["t0"], probs[:1], None, answers, gold_weight=0)


# --- the loop, on a user's own file --------------------------------------------------------------------

def fill(queue: Path, rule) -> None:
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame["gold"] = [rule(t) for t in frame["text"]]
    frame.to_csv(queue, index=False)


def sentiment(text: str) -> str:
    return "positive" if any(w in text for w in ("great", "loved", "good")) else "negative"


def test_the_review_loop_on_a_file_without_gold(own):
    base = FILE + own + ["review.size=12", "review.random=4"]
    cfg = load_config(base)
    first = run_stage(load_config(base + ["stage=all"]))
    assert "reviewed" not in first["eval"]
    cfg.stage = "review"
    out = run_stage(cfg)
    queue = Path(out["queue"])
    assert queue.name == "round-1.csv" and Path(out["jsonl"]).is_file()
    assert (out["random"], out["chosen"]) == (4, 8)
    frame = pd.read_csv(queue, encoding="utf-8-sig", keep_default_na=False)
    assert {"student_label", "teacher_label", "why", "gold"} <= set(frame.columns) and frame["gold"].eq("").all()
    assert run_stage(cfg)["queue"] == str(queue)  # nothing answered yet: the same round, written again
    fill(queue, sentiment)

    second = run_stage(load_config(base + ["stage=all"]))
    reviewed = second["eval"]["reviewed"]
    assert reviewed["parts"] == {"random": 4, "chosen": 8} and reviewed["n_blank"] == 0
    teacher, student = reviewed["models"][0], reviewed["models"][1]
    assert teacher["parts"]["random"]["n"] == 4 and len(teacher["parts"]["random"]["accuracy_ci"]) == 2
    assert student["parts"]["random"]["n"] == 4  # drawn from the texts the student never trained on
    assert student["parts"]["chosen"]["n_trained_on"] == 8  # it learned their answers, so they are not scored
    assert "vs_teacher" in student
    assert second["train"]["student_dir"] != first["train"]["student_dir"]  # the answers made a new student
    assert second["train"]["answers_trained_on"] == 8
    report = Path(second["eval"]["report"]).read_text()
    assert "On your reviewed texts (12 answers" in report and "random sample: the estimate" in report
    assert json.loads((Path(second["eval"]["eval_dir"]) / "metrics.json").read_text())["reviewed"]["parts"]

    again = run_stage(cfg)
    assert Path(again["queue"]).name == "round-2.csv" and again["answered_before"] == 12
    assert not set(pd.read_csv(again["queue"], encoding="utf-8-sig")["text"]) & set(frame["text"])


def test_a_wrong_label_in_the_answers_names_the_file_and_row(own):
    base = FILE + own + ["review.size=6", "review.random=2"]
    run_stage(load_config(base + ["stage=label"]))
    cfg = load_config(base + ["stage=review"])
    queue = Path(run_stage(cfg)["queue"])
    fill(queue, lambda t: "maybe")
    with pytest.raises(DistillError, match=r"round-1.csv, row 2: gold 'maybe' is not one of the labels"):
        run_stage(load_config(base + ["stage=review"]))


def test_the_review_loop_from_the_python_api(own):
    from test_own_data import REVIEWS

    import distill

    settings = [o for o in own if o.startswith(("teacher.", "train."))] + ["student.model=" + own[1].split("=", 1)[1]]
    texts = [f"{r} number {i}" for i, r in enumerate(REVIEWS * 5)]
    labels = distill.label(texts, LABELS, overrides=settings)
    student = distill.train(labels, overrides=settings)
    queue = distill.review_queue(labels, student, size=10, random=3)
    assert (queue.part == "random").sum() == 3 and len(queue) == 10 and queue["gold"].eq("").all()
    assert "student_label" in queue.columns
    queue["gold"] = [sentiment(t) for t in queue["text"]]
    result = distill.estimate(queue, labels, [student])
    teacher, trained = result["models"]
    assert result["parts"] == {"random": 3, "chosen": 7} and teacher["parts"]["random"]["n"] == 3
    assert trained["parts"]["random"]["n_trained_on"] == 0  # the random part comes from texts it never saw
    assert trained["parts"]["chosen"]["n_trained_on"] == 7
    second = distill.review_queue(labels, student, size=10, random=3, answered=queue)
    assert not set(second["text"]) & set(queue["text"])
    with pytest.raises(DistillError, match="gold 'maybe' is not one of the labels"):
        distill.estimate(queue.assign(gold="maybe"), labels)


def test_threshold_table_and_the_threshold_for_a_target():
    from distill.review.estimate import pick_threshold, threshold_table

    probs = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3])
    positive = np.array([True, True, False, True, False, False])
    table = threshold_table(probs, positive, thresholds=[0.5, 0.75])
    assert table[0] == {"threshold": 0.5, "precision": 0.75, "recall": 1.0, "f1": pytest.approx(6 / 7),
                        "share_positive": pytest.approx(4 / 6)}
    assert table[1]["precision"] == 1.0 and table[1]["recall"] == pytest.approx(2 / 3)
    assert pick_threshold(table, precision=0.9)["threshold"] == 0.75
    assert pick_threshold(table, recall=0.9)["threshold"] == 0.5
    assert pick_threshold(table, precision=1.01) is None


def test_predict_sets_its_threshold_from_the_reviewed_random_sample(own, tmp_path):
    from test_own_data import REVIEWS, write_reviews

    pd.DataFrame({"review": [f"{REVIEWS[i % 8]} number {i}" for i in range(400)]}).to_csv(tmp_path / "reviews.csv")
    write_reviews(tmp_path / "new.csv", n=10)
    base = FILE + own + ["review.size=40", "review.random=35"]
    for stage in ("label", "train"):
        run_stage(load_config(base + [f"stage={stage}"]))
    predict = base + ["stage=predict", "input=new.csv"]
    with pytest.raises(DistillError, match="0 answered texts of the random review sample, fewer than the 30"):
        run_stage(load_config(predict + ["predict.target_precision=0.5"]))
    queue = Path(run_stage(load_config(base + ["stage=review"]))["queue"])
    fill(queue, sentiment)
    with pytest.raises(DistillError, match="review answers change the student"):
        run_stage(load_config(predict + ["predict.target_recall=0.5"]))
    run_stage(load_config(base + ["stage=train"]))  # the chosen texts' answers join training: a new student
    out = run_stage(load_config(predict + ["predict.target_recall=0.5"]))
    assert 0 < out["threshold"] < 1
    with pytest.raises(DistillError, match=r"predict.target_precision must be in \(0, 1\], got 1.01"):
        run_stage(load_config(predict + ["predict.target_precision=1.01"]))
    with pytest.raises(DistillError, match="not both"):
        run_stage(load_config(predict + ["predict.target_precision=0.5", "predict.threshold=0.5"]))


def test_gold_eval_carries_intervals_and_the_paired_test(own, tmp_path):
    from test_own_data import write_reviews

    write_reviews(tmp_path / "reviews.csv", gold=True)
    result = run_stage(load_config(FILE + own + ["data.label_column=sentiment", "eval.variants=[torch]"]))["eval"]
    teacher, student = result["models"][0], result["models"][1]
    low, high = teacher["accuracy_ci"]
    assert low <= teacher["accuracy"] <= high and len(student["macro_f1_ci"]) == 2
    assert student["vs_teacher"]["n"] == 8 and 0 <= student["vs_teacher"]["p_value"] <= 1
    table = (Path(result["eval_dir"]) / "metrics.md").read_text()
    assert "accuracy [95% CI]" in table and "(McNemar)" in table and "M |" in table


# --- Label Studio --------------------------------------------------------------------------------------

def test_label_studio_tasks_carry_the_models_labels_and_an_export_reads_back_as_answers(tmp_path):
    from distill.review.labelstudio import labeling_config, read_export, to_tasks

    queue = compose(candidates(), 10, 4, seed=0)
    tasks = to_tasks(queue)
    assert len(tasks) == 10 and "gold" not in tasks[0]["data"]
    assert tasks[0]["data"]["text"] == queue["text"].iloc[0] and tasks[0]["data"]["part"] == queue["part"].iloc[0]
    teacher, student = tasks[0]["predictions"]
    assert teacher["model_version"] == "teacher" and student["model_version"] == "student"
    assert teacher["result"][0]["value"]["choices"] == [queue["teacher_label"].iloc[0]]
    assert teacher["result"][0]["from_name"] == "label" and teacher["result"][0]["to_name"] == "text"
    json_dumped = json.dumps(tasks)  # plain JSON: no numpy values left
    assert "NaN" not in json_dumped
    config = labeling_config(["neg & bad", "positive"])
    assert '<Choice value="neg &amp; bad"/>' in config and 'toName="text"' in config

    def annotated(task, label, cancelled=False, when="2026-12-03T10:00:00Z"):
        return {"result": [{"from_name": "label", "to_name": "text", "type": "choices",
                            "value": {"choices": [label]}}], "was_cancelled": cancelled, "updated_at": when}

    export = []
    for n, task in enumerate(tasks):
        done = {"id": n + 1, "data": task["data"], "predictions": task["predictions"], "annotations": []}
        if n == 0:  # corrected later: the latest annotation counts
            done["annotations"] = [annotated(task, "negative"), annotated(task, "positive", when="2026-12-03T11:00Z")]
        elif n == 1:  # cancelled: no answer
            done["annotations"] = [annotated(task, "positive", cancelled=True)]
        elif n < 6:
            done["annotations"] = [annotated(task, "negative")]
        export.append(done)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    frame = read_export(path)
    assert list(frame["gold"]) == ["positive", "", "negative", "negative", "negative", "negative", "", "", "", ""]
    answers = read_answers([path], LABELS)
    assert len(answers) == 5 and answers.n_blank == 5 and answers.texts[0] == queue["text"].iloc[0]
    assert answers.parts == list(queue["part"].iloc[[0, 2, 3, 4, 5]])
    path.write_text('{"not": "a list"}')
    with pytest.raises(DistillError, match="not a Label Studio JSON export"):
        read_answers([path], LABELS)
