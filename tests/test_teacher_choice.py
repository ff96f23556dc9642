"""teacher=auto: candidates label a sample, a one-coin label model estimates their accuracy without gold,
the most likely right one labels; the choice is kept and reused by every later stage."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from test_stages import make_cfg  # noqa: F401  (fixture)

from distill import artifacts
from distill.errors import DistillError
from distill.weak import choice
from distill.weak.labelmodel import DawidSkene, one_hot


def noisy_votes(truth: np.ndarray, accuracies, k: int, rng) -> np.ndarray:
    """[N, S] label ids: each source right with its accuracy, else a uniformly random other label."""
    n = len(truth)
    return np.stack([np.where(rng.random(n) < a, truth, (truth + rng.integers(1, k, n)) % k) for a in accuracies], 1)


def test_one_coin_recovers_accuracies_over_many_labels_where_full_matrices_cannot():
    rng = np.random.default_rng(0)
    k, truth = 20, rng.integers(0, 20, 600)
    ids = noisy_votes(truth, [0.7, 0.5, 0.3, 0.1], k, rng)
    real = (ids == truth[:, None]).mean(0)
    one_coin = DawidSkene(k, one_coin=True, prior_from="vote").fit(one_hot(ids, k)).accuracies()
    np.testing.assert_allclose(one_coin, real, atol=0.06)
    assert list(np.argsort(one_coin)) == [3, 2, 1, 0]
    # 20 x 21 cells a source from 600 texts: the full model's estimates say little (why the choice uses one-coin)
    full = DawidSkene(k, prior_from="vote").fit(one_hot(ids, k)).accuracies()
    assert np.abs(full - real).max() > 0.15


def test_one_coin_keeps_abstaining_sources_working():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 400)
    ids = noisy_votes(truth, [0.9, 0.8, 0.6], 3, rng)
    ids[rng.random(400) < 0.5, 2] = -1  # the third source votes on half the texts
    model = DawidSkene(3, one_coin=True).fit(one_hot(ids, 3))
    assert model.coverages()[2] == pytest.approx(0.5, abs=0.08) and model.coverages()[0] == 1.0
    assert model.accuracies()[0] > model.accuracies()[1] > model.accuracies()[2]
    assert (model.predict_proba(one_hot(ids, 3)).argmax(1) == truth).mean() > 0.85


def rows_and_probs(ids: np.ndarray, k: int, names=("nli", "mpnet", "minilm")):
    rows = [{"teacher": n, "model": n, "separation_lift": 0.5, "seconds_per_text": 0.01} for n in names]
    return rows, {n: np.eye(k)[ids[:, s]] * 0.9 + 0.1 / k for s, n in enumerate(names)}


def test_choose_picks_the_most_accurate_and_says_why():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 28, 300)
    ids = noisy_votes(truth, [0.3, 0.7, 0.5], 28, rng)
    out = choice.choose(*rows_and_probs(ids, 28), 28)
    assert out["chosen"] == "mpnet" and out["n_texts"] == 300 and out["n_known"] == 0
    est = {r["teacher"]: r["estimated_accuracy"] for r in out["candidates"]}
    assert est["mpnet"] > est["minilm"] > est["nli"]
    assert out["why"].startswith("chose mpnet: its estimated accuracy") and "without gold" in out["why"]
    agree = out["candidates"][1]["agreement"]
    assert set(agree) == {"nli", "minilm"} and agree["minilm"] == pytest.approx((ids[:, 1] == ids[:, 2]).mean())
    assert "| **mpnet** |" in choice.render(out)


def test_reviewed_answers_anchor_the_choice():
    """Two good candidates and a random one: agreement alone cannot rank the good two (the random voter agrees
    with both alike); a person's answers on some texts can."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, 300)
    ids = noisy_votes(truth, [0.25, 0.62, 0.8], 4, rng)
    known = np.full(300, -1)
    known[:60] = truth[:60]
    out = choice.choose(*rows_and_probs(ids, 4), 4, known=known)
    assert out["chosen"] == "minilm" and out["n_known"] == 60 and "anchored on 60 reviewed answers" in out["why"]


@pytest.fixture
def auto_cfg(make_cfg, default_models, tiny_encoder):  # noqa: F811
    (default_models / "all-mpnet-base-v2").symlink_to(tiny_encoder, target_is_directory=True)
    return lambda *extra: make_cfg(f"paths.models={default_models}", "teacher=auto", "teacher.sample=20",
                                   f"student.model={tiny_encoder}", *extra)


def test_teacher_auto_chooses_labels_and_is_reused(auto_cfg, monkeypatch):
    from distill.stages import resolve_teacher, stage_run

    cfg = resolve_teacher(auto_cfg())
    chosen = cfg.teacher.name
    assert chosen in ("deberta-v3-nli", "mpnet", "minilm-embed") and str(cfg.teacher.kind) != "auto"
    [folder] = (artifacts.outputs_root(cfg) / "teacher-choice" / "sst2").iterdir()
    saved = json.loads((folder / "choice.json").read_text())
    assert saved["chosen"] == chosen and saved["n_texts"] == 20
    assert [r["teacher"] for r in saved["candidates"]] == ["deberta-v3-nli", "mpnet", "minilm-embed"]
    assert all(0 <= r["estimated_accuracy"] <= 1 for r in saved["candidates"])
    assert "estimated accuracy (no gold)" in (folder / "choice.md").read_text()
    result = stage_run("label")(cfg)
    meta = json.loads((artifacts.labels_dir(cfg) / "meta.json").read_text())
    assert result["labels_path"].startswith(str(artifacts.outputs_root(cfg) / "labels" / "sst2" / f"{chosen}-pool-"))
    # the sample was labelled once, by the comparison (and the pool repeats some of its texts)
    assert meta["n_texts"] == 32 and meta["n_from_cache"] >= 20

    line = choice.chosen_line(cfg.teacher)
    assert line.startswith(f"The teacher, {chosen}, was compared with") and str(folder / "choice.md") in line
    assert "chosen_by" not in json.dumps(artifacts.label_identity(cfg))  # a note for the report, not a setting

    # Another command (a later stage) reads the choice back: nothing is labelled again.
    monkeypatch.setattr(choice, "compare", lambda *a: pytest.fail("compared again"))
    again = resolve_teacher(auto_cfg())
    assert again.teacher.name == chosen and artifacts.labels_dir(again) == artifacts.labels_dir(cfg)


def test_the_report_says_which_teacher_was_chosen(auto_cfg):
    from distill.stages import resolve_teacher, stage_run

    cfg = resolve_teacher(auto_cfg())
    stage_run("label")(cfg)
    stage_run("train")(cfg)
    report = open(stage_run("eval")(cfg)["report"]).read()
    assert f"The teacher, {cfg.teacher.name}, was compared with" in report and "without gold" in report


def test_teacher_auto_shares_the_users_prompts_with_every_candidate(auto_cfg):
    cfg = auto_cfg("teacher.template='A text about {}.'", "+teacher.label_text={negative: bad}")
    for name in ("deberta-v3-nli", "mpnet"):
        candidate = choice.candidate_config(cfg, name).teacher
        assert candidate.name == name and candidate.template == "A text about {}."
        assert OmegaConf.to_container(candidate.label_text) == {"negative": "bad"}
    # a setting left at its default keeps the preset's own
    assert choice.candidate_config(auto_cfg(), "mpnet").teacher.temperature == 0.05


@pytest.mark.parametrize("extra, message", [
    (["teacher.candidates=[mpnet]"], "name at least two different teacher presets"),
    (["teacher.candidates=[mpnet,mpnet]"], "name at least two different teacher presets"),
    (["teacher.candidates=[mpnet,nope]"], "teacher.candidates (nope): no teacher preset 'nope'"),
    (["teacher.candidates=[mpnet,auto]"], "teacher.candidates names 'auto'"),
    (["teacher.multi_label=true"], "teacher=auto compares single-label teachers"),
    (["teacher.sample=5"], "teacher.sample=5: compare the candidates on at least 20 texts"),
])
def test_teacher_auto_errors_are_one_line(auto_cfg, extra, message):
    from distill.stages import resolve_teacher

    with pytest.raises(DistillError) as e:
        resolve_teacher(auto_cfg(*extra))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_damaged_choice_file_is_a_one_line_error(auto_cfg):
    from distill.stages import resolve_teacher

    cfg = auto_cfg()
    folder = choice.choice_dir(cfg, {n: choice.candidate_config(cfg, n) for n in cfg.teacher.candidates})
    folder.mkdir(parents=True)
    (folder / "choice.json").write_text("{half")
    with pytest.raises(DistillError, match="not a readable teacher choice .*delete it to choose again"):
        resolve_teacher(cfg)


def test_the_auto_teacher_cannot_label_by_itself(auto_cfg):
    from distill.teachers import build_teacher

    with pytest.raises(DistillError, match="teacher=auto is a choice among teacher.candidates"):
        build_teacher(auto_cfg().teacher, ["negative", "positive"])


def test_review_answers_join_the_sample(auto_cfg, tmp_path):
    cfg = auto_cfg()
    review = artifacts.review_dir(cfg)
    review.mkdir(parents=True)
    pd.DataFrame({"text": ["an answered text", "another one"], "gold": ["positive", "negative"],
                  "part": ["random", "random"]}).to_csv(review / "round-1.csv", index=False)
    texts, known = choice.sample_with_answers(cfg, ["a", "b", "another one"], ["negative", "positive"])
    assert texts == ["a", "b", "another one", "an answered text"] and known.tolist() == [-1, -1, 0, 1]


MANY = "data.labels=[" + ",".join(f"topic{i}" for i in range(16)) + "]"


def test_many_labels_compare_the_configured_teacher_first(make_cfg, default_models, tiny_encoder, tiny_nli_2way):  # noqa: F811
    from distill.stages import resolve_teacher

    (default_models / "all-mpnet-base-v2").symlink_to(tiny_encoder, target_is_directory=True)
    cfg = make_cfg(f"paths.models={default_models}", MANY, "teacher.sample=20", "teacher.template='About {}.'")
    resolve_teacher(cfg)
    [folder] = (artifacts.outputs_root(cfg) / "teacher-choice" / "sst2").iterdir()
    saved = json.loads((folder / "choice.json").read_text())
    # the configured teacher as configured (its tiny model, its template), not duplicated by its preset name
    assert [r["teacher"] for r in saved["candidates"]] == ["deberta-v3-nli", "mpnet", "minilm-embed"]
    assert saved["candidates"][0]["model"] == str(tiny_nli_2way)
    assert cfg.teacher.name == saved["chosen"] and cfg.teacher.template == "About {}."


@pytest.mark.parametrize("extra", [["teacher.auto_from=null"], ["teacher.auto_from=17"], ["teacher.multi_label=true"]])
def test_no_comparison_below_auto_from_or_when_off(make_cfg, extra):  # noqa: F811
    from distill.stages import resolve_teacher

    cfg = make_cfg(MANY, *extra)
    before = OmegaConf.to_container(cfg.teacher)
    assert OmegaConf.to_container(resolve_teacher(cfg).teacher) == before
    assert not (artifacts.outputs_root(cfg) / "teacher-choice").exists()


@pytest.mark.integration
def test_bench_teacher_choice_on_real_models(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from conftest import require_model, require_shared

    require_shared("data", "sst2", "dev.tsv")
    for name in ("deberta-v3-nli", "all-mpnet-base-v2", "all-MiniLM-L6-v2"):
        require_model(name)
    out = tmp_path / "c.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_teacher_choice.py"
    done = subprocess.run([sys.executable, str(script), "--texts", "30", "--sets", "sst2", "--out", str(out),
                           "--outputs", str(tmp_path / "o")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    [row] = json.loads(out.read_text())["rows"]
    assert row["labels"] == 2 and row["texts"] == 30 and len(row["candidates"]) == 3
    assert row["chosen"] in {c["teacher"] for c in row["candidates"]} and 0 <= row["gap"] <= 1
    assert all(0 <= c["gold_accuracy"] <= 1 and 0 <= c["estimated_accuracy"] <= 1 for c in row["candidates"])
