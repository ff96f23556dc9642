"""`python -m distill` as a user runs it: one-line errors with exit code 2, `--cfg job`, a real run."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_stages import write_sst2_like


def run_cli(*args, cwd=None):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "distill", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture
def tiny_args(tmp_path, tiny_nli_2way, tiny_encoder):
    write_sst2_like(tmp_path / "data")
    return [f"paths.data={tmp_path / 'data'}", f"paths.outputs={tmp_path / 'out'}",
            f"teacher.model={tiny_nli_2way}", f"student.model={tiny_encoder}", "data.pool_size=16",
            "train.epochs=1", "eval.batch_sizes=[1,4]", "eval.bench_texts=4", "eval.warmup_batches=1"]


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("distill: error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_config_typo(tiny_args):
    assert_one_line_error(run_cli("teacher.batchsize=16", *tiny_args), "teacher.batchsize", "teacher.batch_size")


def test_unknown_preset():
    assert_one_line_error(run_cli("data=sst3"), "sst3", "sst2")


def test_missing_model_folder(tiny_args, tmp_path):
    proc = run_cli("stage=label", *tiny_args, f"teacher.model={tmp_path / 'nope'}")
    assert_one_line_error(proc, str(tmp_path / "nope"), "DISTILL_MODELS")


def test_unknown_data_column(tiny_args):
    assert_one_line_error(run_cli("stage=label", *tiny_args, "data.text_columns=[review]"), "review")


def test_empty_label_list(tiny_args):
    assert_one_line_error(run_cli("stage=label", *tiny_args, "data.labels=[]", "data.label_map=null"),
                          "data.labels")


def test_train_before_label(tiny_args):
    assert_one_line_error(run_cli("stage=train", *tiny_args), "stage=label")


def test_debug_shows_the_traceback(tiny_args):
    proc = run_cli("stage=train", *tiny_args, "debug=true")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_print_resolved_config():
    proc = run_cli("--cfg", "job", "teacher.batch_size=16", "student=electra-small")
    assert proc.returncode == 0, proc.stderr
    assert "batch_size: 16" in proc.stdout and "google/electra-small-discriminator" in proc.stdout


def test_stage_all_runs_and_prints_the_table(tiny_args, tmp_path):
    proc = run_cli("stage=all", *tiny_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| model | role | accuracy" in proc.stdout
    assert "eval:" in proc.stderr + proc.stdout  # the closing one-line summary names the outputs
    assert list((tmp_path / "out" / "eval").rglob("metrics.json"))
