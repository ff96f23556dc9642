"""distill as a user installs it: a wheel built from the checkout, installed outside it, run from another
directory. The configuration ships inside the package, so nothing of the checkout is needed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from test_stages import write_sst2_like

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel installed (without dependencies: this environment has them) into a folder of its own, and
    the environment that runs it: that folder first on the path, the checkout nowhere."""
    wheels, target = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("site")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
             str(ROOT)]
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
