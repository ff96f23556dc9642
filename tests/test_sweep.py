"""Sweeps: `-m` reuses one labelling, every job leaves result.json, the sweep a summary; optimising
sweepers read the objective; experiment= and hparams_search= presets compose."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_cli import assert_one_line_error, tiny_args  # noqa: F401  (tiny_args is a fixture)
from test_tracking import offline_runs, read_run

from distill import sweep
from distill.config import CONF_DIR, load_config, register_configs
from distill.errors import DistillError

HAS_OPTUNA = not sweep._missing("hydra_plugins.hydra_optuna_sweeper")


def run_distill(*args, tmp_path: Path, mode: str = "offline"):
    home = tmp_path / "wandb-home"
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    env.update(WANDB_MODE=mode, WANDB_SILENT="true", HYDRA_FULL_ERROR="0",
               **{var: str(home / var.lower()) for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR")})
    return subprocess.run([sys.executable, "-m", "distill", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def job_results(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob(f"*/{sweep.RESULT_FILE}"))]


def test_two_job_sweep_labels_once_logs_a_wandb_group_and_leaves_a_summary(tiny_args, tmp_path):  # noqa: F811
    sweep_dir = tmp_path / "sweep"
    proc = run_distill("-m", "stage=all", "train.lr=1e-5,3e-5", "logger=wandb", "objective=eval.student_accuracy",
                       f"hydra.sweep.dir={sweep_dir}", *tiny_args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # one labelling of the pool (and one of the held-out set), reused by the second job
    labels = sorted(p.name for p in (tmp_path / "out" / "labels" / "sst2").iterdir())
    assert len([n for n in labels if "-pool-" in n]) == 1, labels
    first, second = job_results(sweep_dir)
    assert (first["job"], second["job"]) == (0, 1)
    assert first["result"]["label"]["cached"] is False and second["result"]["label"]["cached"] is True
    assert first["result"]["label"]["labels_path"] == second["result"]["label"]["labels_path"]
    assert first["result"]["train"]["student_dir"] != second["result"]["train"]["student_dir"]
    for job in (first, second):
        assert job["objective"]["value"] == job["result"]["eval"]["student_accuracy"]

    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [j["overrides"] for j in summary["jobs"]] == [["train.lr=1e-05"], ["train.lr=3e-05"]]  # as Hydra writes them
    assert "stage=all" in summary["common_overrides"] and summary["objective"] == "eval.student_accuracy"
    accuracies = [j["student acc"] for j in summary["jobs"]]
    assert accuracies == [first["result"]["eval"]["student_accuracy"], second["result"]["eval"]["student_accuracy"]]
    assert summary["best_job"] == accuracies.index(max(accuracies))
    assert [j["labels cached"] for j in summary["jobs"]] == [False, True]
    table = (sweep_dir / "summary.md").read_text()
    assert "| job | overrides | student acc |" in table and "| 1 | train.lr=3e-05 |" in table
    assert "| job | overrides | student acc |" in proc.stdout  # printed when the sweep ends

    # W&B: one run per job, grouped by the sweep folder's name
    runs = [read_run(r) for r in offline_runs(tmp_path / "out")]
    assert sorted(r["name"].rsplit("-", 1)[-1] for r in runs) == ["job0", "job1"]
    assert {r["group"] for r in runs} == {"sweep"} and {r["job_type"] for r in runs} == {"all"}
    assert sorted(r["config"]["train"]["lr"] for r in runs) == [1e-5, 3e-5]


def test_single_run_writes_result_json_in_its_run_folder(tiny_args, tmp_path):  # noqa: F811
    proc = run_distill("stage=label", f"hydra.run.dir={tmp_path / 'run'}", *tiny_args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "run" / sweep.RESULT_FILE).read_text())
    assert record["stage"] == "label" and record["result"]["label"]["n_texts"] == 16
    assert record["objective"] is None and "stage=label" in record["overrides"]


def test_lookup_and_objective():
    results = {"train": {"train_loss": 0.5, "cached": True},
               "eval": {"student_accuracy": 0.75, "models": [{"role": "teacher", "name": "t", "accuracy": 0.9},
                                                             {"role": "student", "name": "s", "macro_f1": 0.7}]}}
    assert sweep.lookup(results, "eval.models.student.macro_f1") == 0.7
    assert sweep.lookup(results, "eval.models.t.accuracy") == 0.9
    assert sweep.lookup(results, "eval.models.nobody.accuracy") is None
    assert sweep.objective_value("eval.student_accuracy", results) == 0.75
    with pytest.raises(DistillError, match=r"not a number.*train\.train_loss"):
        sweep.objective_value("train.cached", results)  # a bool is not an objective
    with pytest.raises(DistillError, match="eval.student_accuracy"):
        sweep.objective_value("eval.student_acc", results)


def test_finish_job_outside_hydra_returns_the_objective_or_the_result():
    result = {"student_accuracy": 0.5, "models": []}
    assert sweep.finish_job(load_config(["objective=eval.student_accuracy"]), "eval", result) == 0.5
    assert sweep.finish_job(load_config([]), "eval", result) is result


def test_summary_of_jobs_without_eval_leaves_out_empty_columns(tmp_path):
    for num, lr in enumerate(["1e-5", "3e-5"]):
        sweep.write_json(tmp_path / str(num) / sweep.RESULT_FILE, {
            "job": num, "stage": "train", "overrides": ["stage=train", f"train.lr={lr}"], "objective": None,
            "result": {"train": {"train_loss": 0.1 * (num + 1), "seconds": 2.0, "n_texts": 16}}})
    (tmp_path / "2").mkdir()  # a job that left no result
    text = sweep.summarize(tmp_path)
    assert text.splitlines()[4] == "| job | overrides | train loss | train s | texts |"
    assert "| 1 | train.lr=3e-5 | 0.2000 | 2.0000 | 16 |" in text and "best" not in text
    assert sweep.summarize(tmp_path / "empty") is None


def test_missing_sweeper_plugin_is_named_with_its_extra(monkeypatch):
    monkeypatch.setitem(sweep.PLUGINS["hparams_search"], "optuna", ("hydra_plugins.no_such_sweeper", "optuna"))
    assert "pip install 'distill[optuna]'" in sweep.missing_plugin(["hparams_search=optuna"])
    assert sweep.missing_plugin(["hparams_search=grid", "train.lr=1e-5"]) is None


@pytest.mark.skipif(HAS_OPTUNA, reason="the Optuna sweeper plugin is installed here")
def test_optuna_without_the_plugin_is_one_line(tmp_path):
    proc = run_distill("hparams_search=optuna", tmp_path=tmp_path)
    assert_one_line_error(proc, "hparams_search=optuna", "distill[optuna]")


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_experiment_presets_compose_and_leave_training_to_the_defaults(name):
    cfg = load_config([f"experiment={name}"])
    # AG News: the mpnet embedding teacher with topic descriptions (the xsmall NLI model is poor at topics)
    # GoEmotions: mpnet with one sentence a label, trained on its label sets (the NLI model is near random there)
    teacher = "mpnet" if name in ("ag_news", "goemotions") else "deberta-v3-nli"
    assert cfg.data.name == name and cfg.teacher.name == teacher and cfg.student == load_config([]).student
    # the defaults study judges the defaults through these presets, so they train as the defaults do
    assert cfg.train == load_config([]).train
    assert list(cfg.logger.tags) == [name]
    assert (cfg.weak.name if cfg.weak else None) == ("goemotions" if name == "goemotions" else None)
    assert load_config([f"experiment={name}", "train.lr=3e-5"]).train.lr == 3e-5  # the command line still wins


def compose_with_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_grid_preset_is_a_multirun_with_an_objective():
    cfg = compose_with_hydra(["hparams_search=grid"])
    assert cfg.objective == "eval.student_accuracy" and "MULTIRUN" in str(cfg.hydra.mode)
    assert cfg.hydra.sweeper.params["train.lr"] == "3e-5,1e-4"


needs_optuna = pytest.mark.skipif(not HAS_OPTUNA, reason="hydra-optuna-sweeper is not installed: "
                                                         "pip install 'distill[optuna]'")


@needs_optuna
def test_optuna_preset_composes():
    cfg = compose_with_hydra(["hparams_search=optuna"])
    assert cfg.objective == "eval.student_accuracy" and cfg.hydra.sweeper.direction == "maximize"
    assert "train.lr" in cfg.hydra.sweeper.params


@needs_optuna
def test_optuna_search_maximises_the_objective(tiny_args, tmp_path):  # noqa: F811
    sweep_dir = tmp_path / "sweep"
    proc = run_distill("hparams_search=optuna", "hydra.sweeper.n_trials=2", "train.temperature=2.0",
                       "train.targets=soft", f"hydra.sweep.dir={sweep_dir}", *tiny_args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_results(sweep_dir)
    assert len(jobs) == 2 and jobs[1]["result"]["label"]["cached"] is True
    values = [j["objective"]["value"] for j in jobs]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(values)
    assert "train.lr" in best["best_params"] and "train.targets" not in best["best_params"]  # fixed on the CLI
    assert json.loads((sweep_dir / "summary.json").read_text())["best_job"] == values.index(max(values))


@pytest.mark.parametrize("launcher", ["joblib", "ray"])
def test_launcher_presets_run_the_jobs_in_parallel_and_label_once(launcher, tiny_args, tmp_path):  # noqa: F811
    if sweep.missing_plugin([f"launcher={launcher}"]):
        pytest.skip(f"the Hydra {launcher} launcher is not installed (pip install 'distill[ray]')")
    sweep_dir = tmp_path / "sweep"
    proc = run_distill("-m", f"launcher={launcher}", "stage=all", "train.lr=1e-5,3e-5", "eval.variants=[torch]",
                       f"hydra.sweep.dir={sweep_dir}", *tiny_args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    launched = {"joblib": "Joblib.Parallel(n_jobs=2", "ray": "Ray Launcher is launching 2 jobs"}[launcher]
    assert launched in proc.stdout + proc.stderr
    results = job_results(sweep_dir)
    assert [r["job"] for r in results] == [0, 1]
    # the two jobs ran at once; the labelling lock let exactly one of them label the pool
    assert sorted(r["result"]["label"]["cached"] for r in results) == [False, True]
    assert (sweep_dir / "summary.md").exists()


def test_missing_launcher_plugin_is_named_with_its_extra(monkeypatch):
    monkeypatch.setitem(sweep.PLUGINS["launcher"], "ray", ("hydra_plugins.no_such_launcher", "ray"))
    assert sweep.missing_plugin(["-m", "launcher=ray"]) == ("launcher=ray needs the Hydra ray launcher plugin: "
                                                            "pip install 'distill[ray]'")
