"""distill as a user installs it: a wheel built from the checkout, installed outside it, run from another
directory. The configuration ships inside the package, so nothing of the checkout is needed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from test_own_data import write_reviews
from test_stages import write_sst2_like

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel installed (without dependencies: this environment has them) into a folder of its own, and
    the environment that runs it: that folder first on the path, the checkout nowhere."""
    wheels, target, source = (tmp_path_factory.mktemp(name) for name in ("wheel", "site", "source"))
    # a copy of what git tracks (or would): a stale build/ folder in the checkout never leaks into the wheel
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    for name in tracked.split():
        if name.startswith("distill/") or name in ("pyproject.toml", "README.md"):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
             str(source)]
    subprocess.run(build, check=True, capture_output=True, text=True)
    wheel = next(wheels.glob("distill-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    return {"wheel": wheel, "env": {**os.environ, "PYTHONPATH": str(target)}, "site": target}


def run(installed, cwd, *args):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=installed["env"], capture_output=True, text=True,
                          timeout=600)


def test_the_wheel_ships_the_configuration(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "distill/conf/config.yaml" in names
    assert {"distill/conf/data/sst2.yaml", "distill/conf/teacher/deberta-v3-nli.yaml",
            "distill/conf/student/minilm.yaml"} <= set(names)


def test_the_installed_wheel_composes_and_labels_from_another_directory(installed, tmp_path, tiny_nli_2way,
                                                                       tiny_encoder):
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run(installed, work, "-c", "import distill; print(distill.__file__)")
    assert where.stdout.strip().startswith(str(installed["site"])), where  # the wheel, not the checkout
    job = run(installed, work, "-m", "distill", "--cfg", "job")
    assert job.returncode == 0, job.stderr[-2000:]
    assert "teacher:" in job.stdout and "deberta-v3-nli" in job.stdout
    write_sst2_like(tmp_path / "data")
    label = run(installed, work, "-m", "distill", "stage=label", f"paths.data={tmp_path / 'data'}",
                "paths.outputs=out", f"teacher.model={tiny_nli_2way}", "data.pool_size=16")
    assert label.returncode == 0, label.stderr[-2000:]
    [labels] = (work / "out" / "labels" / "sst2").glob("*/labels.parquet")  # relative to where it ran
    assert len(pd.read_parquet(labels)) == 16
    assert json.loads((labels.parent / "meta.json").read_text())["n_texts"] == 16


@pytest.fixture
def user(installed, tmp_path, default_models) -> tuple[Path, dict]:
    """An empty folder outside the checkout holding a CSV of reviews (no gold column), and the installed
    wheel's environment with the default models laid out (tiny) where DISTILL_MODELS points."""
    models = default_models
    work = tmp_path / "project"
    work.mkdir()
    write_reviews(work / "reviews.csv", n=48)
    env = {**installed["env"], "DISTILL_MODELS": str(models)}
    return work, env


QUICK = ["eval.batch_sizes=[1,8]", "eval.bench_texts=16", "eval.repeats=1"]


def distill(work, env, *args):
    done = subprocess.run([sys.executable, "-m", "distill", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"{args}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_labels_trains_and_evaluates_a_users_csv_without_gold(user):
    work, env = user
    distill(work, env, "init", "reviews.csv", "--labels", "negative,positive")
    done = distill(work, env, *QUICK)
    report = work / done.stdout.split("report: ")[-1].split()[0]  # relative to where distill ran
    assert report.is_file() and "no gold labels" in report.read_text()
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert metrics["gold"] is False and metrics["models"][1]["agreement_with_teacher"] is not None


def test_the_wheel_runs_a_preset_of_ones_own_from_config_dir(user):
    work, env = user
    (work / "conf" / "data").mkdir(parents=True)
    (work / "conf" / "data" / "reviews.yaml").write_text(
        "pool: {path: reviews.csv}\ntext_columns: [review]\nlabels: [negative, positive]\n")
    done = distill(work, env, "--config-dir", "conf", "data=reviews", *QUICK)
    assert "report: " in done.stdout and list((work / "outputs" / "students" / "reviews").iterdir())


def test_the_wheel_python_api(user):
    work, env = user
    code = ("import distill, pandas as pd\n"
            "labels = distill.label(pd.read_csv('reviews.csv')['review'], ['negative', 'positive'])\n"
            "student = distill.train(labels)\n"
            "print(len(labels), student.predict(['i loved the plot']))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("48 [")
