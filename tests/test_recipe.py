"""Recipes: a chain of stages that makes a student, run by stage=all, cached step by step, and evaluated
with its intermediate models; the quality presets (recipe=fast|balanced|best) compose."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_script
from test_stages import write_sst2_like

from distill import artifacts
from distill.config import load_config
from distill.errors import DistillError
from distill.stages import run_stage

TINY_RECIPE = """
name: tiny
steps:
  - {name: first, stage: train}
  - {name: relabel, stage: label, overrides: [teacher=assistant, "teacher.model={first}", teacher.variant=torch]}
  - {name: second, stage: train, overrides: ["train.labels_path={relabel}", train.seed=7]}
  - {name: pruned, stage: prune, overrides: [prune.drop_layers=1, "prune.labels_path={relabel}", prune.epochs=1]}
"""


@pytest.fixture
def recipe_cfg(tmp_path, tiny_nli_2way, tiny_encoder):
    write_sst2_like(tmp_path / "data")
    (tmp_path / "conf" / "recipe").mkdir(parents=True)
    (tmp_path / "conf" / "recipe" / "tiny.yaml").write_text(TINY_RECIPE)

    def make(*extra):
        cfg = load_config([f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "recipe=tiny", "data=sst2",
                           f"paths.data={tmp_path / 'data'}", f"paths.outputs={tmp_path / 'out'}",
                           f"teacher.model={tiny_nli_2way}", f"student.model={tiny_encoder}", "data.pool_size=24",
                           "train.epochs=1", "train.batch_size=8", "eval.batch_sizes=[1,4]", "eval.bench_texts=8",
                           "eval.warmup_batches=1", "eval.repeats=1", "eval.variants=[torch]", *extra])
        cfg.stage = "all"
        return cfg
    return make


def test_a_recipe_runs_after_labelling_and_eval_compares_every_student_it_made(recipe_cfg):
    cfg = recipe_cfg()
    result = run_stage(cfg)
    assert list(result) == ["label", "recipe", "eval"]
    steps = result["recipe"]
    assert list(steps) == ["first", "relabel", "second", "pruned"]
    assert all(not r["cached"] for r in steps.values())
    assert steps["relabel"]["n_texts"] == 24 and "assistant" in steps["relabel"]["labels_path"]
    assert steps["pruned"]["dropped_layers"] and steps["pruned"]["student_dir"].endswith(
        Path(steps["relabel"]["labels_path"]).parent.name)
    # the second student learned from the assistant's labels, not the teacher's
    record = json.loads((Path(steps["second"]["student_dir"]) / "distill_config.json").read_text())
    assert record["labels_path"] == steps["relabel"]["labels_path"]
    models = result["eval"]["models"]
    assert [m["role"] for m in models] == ["teacher", "student", "student", "student"]
    assert [m["model"] for m in models[1:]] == [steps[s]["student_dir"] for s in ("first", "second", "pruned")]
    # the recipe's comparison has a folder of its own, not the one of the student the run trains without a recipe
    assert Path(result["eval"]["eval_dir"]).name.startswith(f"{cfg.teacher.name}-recipe-tiny-")
    assert Path(result["eval"]["eval_dir"]) != artifacts.eval_dir(cfg)


def test_a_rerun_finds_every_step_done(recipe_cfg):
    run_stage(recipe_cfg())
    again = run_stage(recipe_cfg())
    assert again["label"]["cached"] and all(r["cached"] for r in again["recipe"].values())


def test_a_step_that_names_no_earlier_step_is_one_clear_error(recipe_cfg, tmp_path):
    (tmp_path / "conf" / "recipe" / "tiny.yaml").write_text(
        "name: tiny\nsteps:\n  - {name: a, stage: train, overrides: ['train.labels_path={nothing}']}\n")
    with pytest.raises(DistillError, match=r"step a: \{nothing\} names no earlier step"):
        run_stage(recipe_cfg())


@pytest.mark.parametrize("preset,steps", [("fast", ["minilm"]), ("balanced", ["deberta-6l"]),
                                          ("best", ["assistant", "assistant-labels", "six-layers", "pruned"])])
def test_the_quality_presets_compose_step_by_step(preset, steps, tmp_path):
    cfg = load_config([f"recipe={preset}", f"paths.outputs={tmp_path}"])
    planned = list(artifacts.recipe_steps(cfg))
    assert [step.name for step, _, _ in planned] == steps
    for step, step_cfg, product in planned:
        assert str(product).startswith(str(tmp_path)) and step_cfg.recipe.name == preset
    if preset == "best":  # the assistant's labels feed the pruned student
        labels = planned[1][2]
        assert planned[1][1].teacher.model == str(planned[0][2])
        assert planned[3][1].prune.labels_path == str(labels) and planned[3][2].name.endswith(labels.parent.name)


def test_the_defaults_study_chooses_by_leaving_each_data_set_out():
    study = load_script("study_defaults")
    rows = [{"data": d, "candidate": c, "gain": g, "teacher": 0.8, "accuracy": 0.8 + g, "int8_speedup_32": 9.0}
            for d, c, g in [("a", "x", 0.05), ("a", "y", 0.00), ("b", "x", -0.10), ("b", "y", 0.01),
                            ("c", "x", 0.04), ("c", "y", 0.02), ("d", "x", 0.30), ("d", "y", 0.00)]]
    loo = study.leave_one_out(rows)
    chosen = {c["left_out"]: c["chosen"] for c in loo}
    # the best worst case on the other sets: x's -0.10 on b rules it out wherever b is among them; b left out, x's
    # worst (0.04) beats y's (0.00). The mean would take x three times of four (its +0.30 on d outweighs b)
    assert chosen == {"a": "y", "b": "x", "c": "y", "d": "y"}
    assert {c["left_out"]: c["chosen_by_mean"] for c in loo} == {"a": "x", "b": "x", "c": "x", "d": "y"}
    assert {c["left_out"]: c["worst_on_others"] for c in loo} == pytest.approx({"a": 0.0, "b": 0.04, "c": 0.0, "d": 0.0})
    tie = [{**r, "gain": {"x": 0.0, "y": 0.0}[r["candidate"]] if r["data"] == "b" else r["gain"]} for r in rows]
    assert {c["left_out"]: c["chosen"] for c in study.leave_one_out(tie)}["a"] == "x"  # worst 0.0 both: mean
    # a candidate measured on some sets only takes no part, however good it looks there
    partial = rows + [{"data": "a", "candidate": "z", "gain": 0.5, "teacher": 0.8, "accuracy": 1.0, "int8_speedup_32": 9}]
    assert {c["left_out"]: c["chosen"] for c in study.leave_one_out(partial)} == chosen
    # the target: within 1 point of the teacher as shipped (int8), at 5x its speed or more
    assert study.meets_target({"teacher": 0.80, "int8_accuracy": 0.7905, "int8_speedup_32": 5.0})
    assert not study.meets_target({"teacher": 0.80, "int8_accuracy": 0.789, "int8_speedup_32": 9.0})
    assert not study.meets_target({"teacher": 0.80, "int8_accuracy": 0.85, "int8_speedup_32": 4.9})
    assert not study.meets_target({"teacher": 0.80, "int8_accuracy": 0.85, "int8_speedup_32": None})
    # several training seeds: a data set and candidate is scored by the mean, its spread kept
    seeded = [{"data": "a", "candidate": "x", "seed": s, "gain": g, "teacher": 0.8, "accuracy": 0.8 + g,
               "int8_accuracy": 0.8 + g, "int8_speedup_32": v, "seconds": 10.0}
              for s, g, v in [(42, 0.02, 8.0), (43, -0.04, None)]]
    [row] = study.pooled(seeded)
    assert row["gain"] == pytest.approx(-0.01) and row["gains"] == [0.02, -0.04] and row["seeds"] == [42, 43]
    assert row["int8_speedup_32"] == 8.0  # an untimed run does not count as zero
    assert study.mean_gains(study.pooled(rows)) == pytest.approx({"x": 0.0725, "y": 0.0075})
