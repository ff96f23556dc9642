"""The README's own-file example, run as written (the `distill` of each command is this Python's
`-m distill`), on tiny models laid out where DISTILL_MODELS points: it cannot rot."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_own_data import write_reviews

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.fixture
def user_folder(tmp_path, default_models):
    """A folder with the README's files, and an environment whose default models are the tiny ones."""
    models = default_models
    work = tmp_path / "work"
    work.mkdir()
    write_reviews(work / "reviews.csv", n=48)
    write_reviews(work / "new_reviews.csv", n=6)
    env = {**os.environ, "DISTILL_MODELS": str(models), "DISTILL_SHARED": str(tmp_path / "no-shared")}
    return work, env


def test_the_readme_own_file_commands_run_as_written(user_folder):
    work, env = user_folder
    [commands] = blocks(section("Your own data"), "bash")
    lines = [line.split("#")[0].strip() for line in commands.splitlines() if line.strip().startswith("distill")]
    assert len(lines) == 3, commands
    for line in lines:
        args = shlex.split(line)[1:]
        done = subprocess.run([sys.executable, "-m", "distill", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
    assert (work / "distill.yaml").is_file()
    assert "report: " in done.stdout or list((work / "outputs" / "eval").rglob("report.md"))
    assert (work / "outputs" / "predictions" / "new_reviews.predictions.csv").is_file()


def test_the_readme_python_example_runs_as_written(user_folder):
    work, env = user_folder
    [code] = blocks(section("Your own data"), "python")
    done = subprocess.run([sys.executable, "-c", code + "\nprint(student.predict(['I loved every minute']))"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] in ("['positive']", "['negative']")


def test_the_readme_preset_of_ones_own_composes(user_folder):
    work, env = user_folder
    [preset] = blocks(section("Your own data"), "yaml")
    (work / "conf" / "data").mkdir(parents=True)
    (work / "conf" / "data" / "reviews.yaml").write_text(preset)
    done = subprocess.run([sys.executable, "-m", "distill", "--config-dir", "conf", "data=reviews", "--cfg", "job"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "name: reviews" in done.stdout or "name: ${stem:${data.pool.path}}" in done.stdout


def test_the_readme_quality_settings_compose_to_what_they_say():
    from distill.config import load_config

    [commands] = blocks(section("Quality and speed"), "bash")
    lines = [shlex.split(line.split("#")[0])[1:] for line in commands.splitlines() if line.startswith("distill")]
    assert lines == [[], ["recipe=fast"], ["recipe=best"], ["train.max_minutes=10"]], lines
    default, fast, best, limited = (load_config(args) for args in lines)
    assert limited.train.max_minutes == 10 and default.train.max_minutes is None
    assert default.recipe is None and default.student.name == "deberta-nli-6l" and default.student.layers == 6
    assert default.train.epochs == 6 and default.train.early_stopping_patience is None
    assert [s.overrides for s in fast.recipe.steps] == [["student=minilm", "train.epochs=3",
                                                         "train.early_stopping_patience=3"]]
    # "recipe=balanced names the default": its one step is the default's student and training
    [step] = load_config(["recipe=balanced"]).recipe.steps
    named = load_config(step.overrides)
    assert named.student == default.student and named.train == default.train
    assert [s.stage for s in best.recipe.steps] == ["train", "label", "train", "prune"]


def test_the_readme_review_loop_runs_as_written(user_folder):
    """`Check the labels`: after the own-file commands, a review round, the answers filled in (by rule,
    as a person would in a spreadsheet), and the run again, whose report then has the reviewed section."""
    import pandas as pd

    work, env = user_folder
    [setup] = blocks(section("Your own data"), "bash")
    [review] = blocks(section("Check the labels"), "bash")
    own = [line.split("#")[0].strip() for line in setup.splitlines() if line.strip().startswith("distill")][:2]
    loop = [line.split("#")[0].strip() for line in review.splitlines() if line.strip().startswith("distill")]
    assert loop == ["distill stage=review", "distill"], loop

    def run(line):
        done = subprocess.run([sys.executable, "-m", "distill", *shlex.split(line)[1:]], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
        return done

    for line in own:
        run(line)
    done = run(loop[0])
    [queue] = (work / "outputs" / "review").rglob("round-1.csv")
    assert str(queue.relative_to(work)) in done.stdout
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame["gold"] = ["positive" if any(w in t for w in ("great", "loved", "good")) else "negative"
                     for t in frame["text"]]
    frame.to_csv(queue, index=False)
    run(loop[1])
    [report] = [p for p in (work / "outputs" / "eval").rglob("report.md") if "reviewed" in p.read_text()]
    assert "On your reviewed texts" in report.read_text()
