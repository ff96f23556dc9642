"""Every stage end to end on tiny random models and a tiny SST-2-shaped data set, without Hydra's main."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from distill import artifacts
from distill.config import load_config
from distill.errors import DistillError
from distill.stages import evaluate, label, run_stage, train

POS = ["a great movie", "good fun and great actors", "i love this film", "really good story", "fine and fun"]
NEG = ["an awful movie", "terrible plot and boring actors", "i hate this film", "really bad story", "so boring"]


def write_sst2_like(root, n_pool=40, n_dev=12):
    """train.tsv WITHOUT a label column (the label stage must not need gold) and a labelled dev.tsv."""
    (root / "sst2").mkdir(parents=True)
    pool = [(POS + NEG)[i % 10] + f" {'very ' * (i % 3)}" for i in range(n_pool)]
    pd.DataFrame({"sentence": pool}).to_csv(root / "sst2" / "train.tsv", sep="\t", index=False)
    dev = [((POS + NEG)[i % 10], int(i % 10 < 5)) for i in range(n_dev)]
    pd.DataFrame(dev, columns=["sentence", "label"]).to_csv(root / "sst2" / "dev.tsv", sep="\t", index=False)


@pytest.fixture
def make_cfg(tmp_path, tiny_nli_2way, tiny_encoder):
    write_sst2_like(tmp_path / "data")

    def make(*extra):
        return load_config([
            "data=sst2", f"paths.data={tmp_path / 'data'}", f"paths.outputs={tmp_path / 'out'}",
            # Models through ${paths.models}, as the real presets do, so interpolations are exercised.
            f"paths.models={tiny_encoder.parent}", f"teacher.model={tiny_nli_2way}",
            # the default student's preset (6 layers) on the tiny 2-layer encoder: it keeps both
            f"student.model=${{paths.models}}/{tiny_encoder.name}", "data.pool_size=32",
            "label.shard_size=10", "train.epochs=1", "train.batch_size=8",
            "eval.batch_sizes=[1,4]", "eval.bench_texts=8", "eval.warmup_batches=1", *extra])
    return make


def test_all_checks_the_gold_values_before_labelling(make_cfg, tmp_path):
    dev = tmp_path / "data" / "sst2" / "dev.tsv"
    dev.write_text(dev.read_text().replace("\t1\n", "\t9\n", 1))
    cfg = make_cfg("stage=all")
    with pytest.raises(DistillError, match=r"gold value '9' in .*dev.tsv"):
        run_stage(cfg)
    assert not (tmp_path / "out" / "labels").exists()


def test_label_writes_probabilities_and_meta(make_cfg):
    cfg = make_cfg()
    out = label.run(cfg)
    frame = pd.read_parquet(out["labels_path"])
    assert len(frame) == 32 and list(frame["id"]) == list(range(32))
    assert {"text", "prob_negative", "prob_positive", "label", "confidence"} <= set(frame.columns)
    probs = frame[["prob_negative", "prob_positive"]].to_numpy()
    assert abs(probs.sum(axis=1) - 1).max() < 1e-5
    assert set(frame["label"]) <= {"negative", "positive"}
    meta = json.loads((artifacts.labels_dir(cfg, "pool") / "meta.json").read_text())
    assert meta["n_texts"] == 32 and meta["labels"] == ["negative", "positive"]
    assert meta["teacher"]["template"] == "This example is {}." and meta["texts_per_s"] > 0
    assert out["cached"] is False


def test_label_rerun_is_a_cache_hit_and_resume_matches(make_cfg):
    cfg = make_cfg()
    first = pd.read_parquet(label.run(cfg)["labels_path"])
    assert label.run(cfg)["cached"] is True
    folder = artifacts.labels_dir(cfg, "pool")
    # Simulate a crash after three of four shards: the final files and the last shard are gone.
    (folder / "labels.parquet").unlink()
    (folder / "meta.json").unlink()
    (folder / "shards" / "part-000003.parquet").unlink()
    again = label.run(cfg)
    assert again["cached"] is False
    meta = json.loads((folder / "meta.json").read_text())
    # only the missing shard (rows 30-31) was redone, from the per-text cache: the teacher had labelled its texts
    assert meta["n_from_cache"] == 2 and meta["n_labelled_this_run"] == 0
    pd.testing.assert_frame_equal(first, pd.read_parquet(again["labels_path"]))


def test_label_workers_give_the_labels_of_one_process(make_cfg):
    one = pd.read_parquet(label.run(make_cfg("teacher.device=cpu", "teacher.dtype=float32"))["labels_path"])
    # CPU workers (on a GPU the teacher runs in-process)
    cfg = make_cfg("teacher.device=cpu", "teacher.dtype=float32", "label.workers=2")
    shutil.rmtree(artifacts.labels_dir(cfg, "pool"))  # same identity: label it again, now in 2 processes
    out = label.run(cfg)
    assert out["cached"] is False
    pd.testing.assert_frame_equal(one, pd.read_parquet(out["labels_path"]), check_exact=False, atol=1e-6)
    meta = json.loads((artifacts.labels_dir(cfg, "pool") / "meta.json").read_text())
    assert meta["teacher"]["kind"] == "nli" and meta["teacher"]["device"] == "cpu"  # the workers' teacher


def test_label_workers_errors_are_one_line(make_cfg, tmp_path):
    with pytest.raises(DistillError, match="label.workers must be at least 1"):
        label.run(make_cfg("label.workers=0"))
    with pytest.raises(DistillError, match="teacher.model"):  # raised in a worker, re-raised here
        label.run(make_cfg("label.workers=2", f"teacher.model={tmp_path / 'no-such-model'}"))


def test_eval_repeats_below_one_is_a_one_line_error(make_cfg):
    with pytest.raises(DistillError, match="eval.repeats must be at least 1"):
        evaluate.run(make_cfg("eval.repeats=0"))


def test_changed_template_makes_a_new_labelling(make_cfg):
    a, b = make_cfg(), make_cfg("teacher.template='This text is {}.'")
    assert artifacts.labels_dir(a) != artifacts.labels_dir(b)
    assert artifacts.labels_dir(a) == artifacts.labels_dir(make_cfg("teacher.batch_size=3"))


def test_explicit_precision_makes_a_new_labelling(make_cfg):
    """bf16 and float32 labels differ near ties: teacher.dtype / teacher.compile set by hand are not a cache hit
    for each other; `auto` keeps the key labellings always had."""
    auto = artifacts.labels_dir(make_cfg())
    assert artifacts.labels_dir(make_cfg("teacher.dtype=auto", "teacher.compile=auto",
                                         "teacher.recheck_margin=0.01")) == auto
    explicit = {artifacts.labels_dir(make_cfg(*o)) for o in (["teacher.dtype=float32"], ["teacher.dtype=bfloat16"],
                                                             ["teacher.compile=false"], ["teacher.compile=true"],
                                                             ["teacher.recheck_margin=0"])}
    assert len(explicit) == 5 and auto not in explicit
    assert artifacts.labels_dir(make_cfg("teacher.compile=False")) == artifacts.labels_dir(make_cfg("teacher.compile=false"))


def test_train_without_labels_says_run_label_first(make_cfg):
    with pytest.raises(DistillError, match="stage=label"):
        train.run(make_cfg())


def test_eval_without_student_says_run_train_first(make_cfg):
    with pytest.raises(DistillError, match="stage=train"):
        evaluate.run(make_cfg())


@pytest.mark.parametrize("targets", ["soft", "hard"])
def test_label_train_eval(make_cfg, targets):
    from transformers import pipeline

    # the ONNX exports are measured once (soft); the hard run keeps to the torch student
    variants = "[torch,onnx,onnx-int8]" if targets == "soft" else "[torch]"
    cfg = make_cfg(f"train.targets={targets}", f"eval.variants={variants}")
    result = run_stage(cfg)
    folder = result["train"]["student_dir"]
    classify = pipeline("text-classification", model=folder)
    assert classify("a great movie")[0]["label"] in {"negative", "positive"}
    out = artifacts.eval_dir(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    teacher, *students = metrics["models"]
    assert teacher["role"] == "teacher" and {s["role"] for s in students} == {"student"}
    assert [s["variant"] for s in students] == variants.strip("[]").split(",")
    assert metrics["n_heldout"] == 12
    for entry in (teacher, *students):
        assert 0 <= entry["accuracy"] <= 1 and 0 <= entry["macro_f1"] <= 1 and 0 <= entry["ece"] <= 1
        assert set(entry["samples_per_s"]) == {"1", "4"} and min(entry["samples_per_s"].values()) > 0
        assert entry["latency_ms"]["batch_size"] == 1 and 0 < entry["latency_ms"]["p50"] <= entry["latency_ms"]["p95"]
        assert set(entry["per_class"]) == {"negative", "positive"}
        assert sum(map(sum, entry["confusion"])) == 12 and entry["num_parameters"] > 0 and entry["size_mb"] > 0
        assert sum(c["support"] for c in entry["per_class"].values()) == 12
    for student in students:
        assert 0 <= student["agreement_with_teacher"] <= 1 and student["speedup_vs_teacher"]["4"] > 0
    if targets == "soft":  # the fp32 export gives the torch student's predictions
        assert students[1]["agreement_with_teacher"] == students[0]["agreement_with_teacher"]
        assert students[1]["confusion"] == students[0]["confusion"]
    table = (out / "metrics.md").read_text()
    assert "samples/s @4" in table and "agreement" in table and "speed-up over the teacher" in table
    report = (out / "report.md").read_text()
    assert result["eval"]["report"] == str(out / "report.md")
    for png in ("confusion.png", "throughput.png", "accuracy_vs_speed.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png})" in report


def test_eval_all_compares_every_student_of_this_teacher(make_cfg):
    cfg = make_cfg("eval.variants=[torch]")
    label.run(cfg)
    train.run(cfg)
    train.run(make_cfg("train.targets=hard"))
    result = evaluate.run(make_cfg("eval.students=all", "eval.variants=[torch]", "eval.plots=false"))
    names = [m["name"] for m in result["models"]]
    assert names[0] == "deberta-v3-nli", names
    assert sorted(names[1:]) == ["deberta-nli-6l (hard)", "deberta-nli-6l (soft)"], names
    assert result["eval_dir"].endswith("deberta-v3-nli-all") and result["plots"] == []


def test_sweep_over_student_settings_reuses_one_labelling(make_cfg):
    label.run(make_cfg())
    a, b = make_cfg("train.lr=1e-5"), make_cfg("train.lr=3e-5")
    assert artifacts.labels_file(a) == artifacts.labels_file(b)
    assert artifacts.student_dir(a) != artifacts.student_dir(b)


def test_wrong_labels_in_label_file(make_cfg, tmp_path):
    cfg = make_cfg()
    path = label.run(cfg)["labels_path"]
    moved = tmp_path / "other.parquet"
    shutil.copy(path, moved)
    bad = make_cfg(f"train.labels_path={moved}", "data.labels=[bad,good]", "data.label_map=null")
    with pytest.raises(DistillError, match="labelled with labels"):
        train.run(bad)


def test_train_rerun_is_a_cache_hit_unless_overwrite(make_cfg, caplog):
    cfg = make_cfg()
    label.run(cfg)
    with caplog.at_level("WARNING", logger="distill.stages.train"):
        first = train.run(cfg)
    assert first["cached"] is False
    assert "only 32 texts to learn from" in caplog.text  # a small file is told it is small
    again = train.run(cfg)
    assert again["cached"] is True and again["student_dir"] == first["student_dir"]
    assert again["n_texts"] + again["n_val"] == 32 and again["n_val"] == 3
    assert train.run(make_cfg("train.overwrite=true"))["cached"] is False
