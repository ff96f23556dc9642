"""Weak supervision: label models on simulated votes with known source accuracies, LFs, the LF summary,
confident-learning flags, temperature scaling, and stage=weak -> train -> eval on tiny models."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distill import artifacts
from distill.config import load_config
from distill.errors import DistillError
from distill.stages import evaluate, run_stage, train, weak
from distill.weak import calibration, noise
from distill.weak.labelmodel import DawidSkene, average, majority_vote, one_hot
from distill.weak.sources import build_sources, word_pattern
from distill.weak.summary import lf_summary

from conftest import SHARED, require_model, require_shared


def simulate(n, accuracies, k=2, prior=None, seed=0):
    """Gold labels and [N, S] votes of independent sources, each right with its accuracy and otherwise
    a uniformly chosen wrong label."""
    rng = np.random.default_rng(seed)
    gold = rng.choice(k, size=n, p=np.full(k, 1 / k) if prior is None else prior)
    ids = np.empty((n, len(accuracies)), dtype=np.int64)
    for s, acc in enumerate(accuracies):
        ids[:, s] = np.where(rng.random(n) < acc, gold, (gold + rng.integers(1, k, size=n)) % k)
    return gold, ids


def accuracy(probs, gold):
    return float((probs.argmax(1) == gold).mean())


# ------------------------------------------------------------------------------------------ label models

def test_dawid_skene_recovers_accuracies_and_beats_majority_vote():
    # One good source outvoted by two independent poor ones whenever they agree: the vote follows them,
    # Dawid-Skene learns from the agreement pattern whom to trust.
    gold, ids = simulate(4000, [0.9, 0.6, 0.6])
    votes = one_hot(ids, 2)
    model = DawidSkene(2).fit(votes)
    np.testing.assert_allclose(model.accuracies(), [0.9, 0.6, 0.6], atol=0.05)
    mv, ds = accuracy(majority_vote(votes), gold), accuracy(model.predict_proba(votes), gold)
    assert mv < 0.81 and ds > 0.87, (mv, ds)


def test_correlated_bad_sources_fool_dawid_skene_unless_discounted():
    # B and C are poor (0.6) and C copies B 95% of the time: Dawid-Skene assumes independent sources,
    # reads their agreement as accuracy and follows them (a known limitation, documented here). Weights of
    # 0.5 each make the pair count once, and then it beats the vote.
    gold, ids = simulate(4000, [0.85, 0.6, 0.6, 0.7, 0.7], k=4, seed=1)
    copy = np.random.default_rng(5).random(len(gold)) < 0.95
    ids[copy, 2] = ids[copy, 1]
    votes = one_hot(ids, 4)
    mv = accuracy(majority_vote(votes), gold)
    naive = DawidSkene(4).fit(votes)
    assert naive.accuracies()[1] > 0.95 and accuracy(naive.predict_proba(votes), gold) < mv
    weights = [1, 0.5, 0.5, 1, 1]
    discounted = DawidSkene(4, weights=weights).fit(votes)
    np.testing.assert_allclose(discounted.accuracies(), [0.85, 0.6, 0.6, 0.7, 0.7], atol=0.05)
    assert accuracy(discounted.predict_proba(votes), gold) > max(mv, accuracy(majority_vote(votes, weights), gold)) + 0.01


def test_abstains_are_informative_for_one_sided_lfs():
    # Two mediocre teachers and a keyword LF that fires on half the positives and 3% of the negatives
    # (it never votes negative). Abstaining is an outcome of the LF, so a firing counts as evidence.
    gold, ids = simulate(5000, [0.75, 0.7], prior=[0.85, 0.15], seed=2)
    rng = np.random.default_rng(3)
    fires = np.where(gold == 1, rng.random(len(gold)) < 0.5, rng.random(len(gold)) < 0.03)
    ids = np.column_stack([ids, np.where(fires, 1, -1)])
    votes = one_hot(ids, 2)
    assert votes[~fires, 2].sum() == 0  # an abstain is an all-zero row
    model = DawidSkene(2).fit(votes)
    np.testing.assert_allclose(model.prior_, [0.85, 0.15], atol=0.02)
    np.testing.assert_allclose(model.coverages()[2], fires.mean(), atol=0.01)
    assert model.accuracies()[2] > 0.75  # where it votes, it is mostly right
    without_lf = DawidSkene(2).fit(votes[:, :2])
    assert accuracy(model.predict_proba(votes), gold) > accuracy(without_lf.predict_proba(votes[:, :2]), gold) + 0.02


def test_rows_without_votes_get_the_prior_and_majority_ties_split():
    votes = one_hot(np.array([[0, 1], [-1, -1], [1, 1]]), 2)
    np.testing.assert_allclose(majority_vote(votes), [[0.5, 0.5], [0.5, 0.5], [0, 1]])
    np.testing.assert_allclose(majority_vote(votes, prior=[0.8, 0.2])[1], [0.8, 0.2])
    np.testing.assert_allclose(average(votes, weights=[3, 1])[0], [0.75, 0.25])
    gold, ids = simulate(2000, [0.8, 0.7, 0.7], seed=4)
    ids[:10] = -1
    model = DawidSkene(2).fit(one_hot(ids, 2))
    np.testing.assert_allclose(model.predict_proba(one_hot(ids[:10], 2)), np.tile(model.prior_, (10, 1)))


def test_class_prior_estimated_or_fixed():
    gold, ids = simulate(6000, [0.8, 0.75, 0.7], prior=[0.7, 0.2, 0.1], k=3, seed=6)
    votes = one_hot(ids, 3)
    estimated = DawidSkene(3).fit(votes)
    np.testing.assert_allclose(estimated.prior_, [0.7, 0.2, 0.1], atol=0.03)
    fixed = DawidSkene(3, class_prior=[1, 1, 1]).fit(votes)
    np.testing.assert_allclose(fixed.prior_, [1 / 3] * 3)
    # A uniform prior moves borderline texts towards the rare classes: more of them predicted.
    assert (fixed.predict_proba(votes).argmax(1) == 2).sum() > (estimated.predict_proba(votes).argmax(1) == 2).sum()
    # prior_from="vote": the class shares of the soft majority (plus smoothing), held through EM.
    held = DawidSkene(3, prior_from="vote").fit(votes)
    shares = average(votes).sum(0) + 1
    np.testing.assert_allclose(held.prior_, shares / shares.sum())
    with pytest.raises(ValueError, match="class_prior"):
        DawidSkene(3, class_prior=[1, 0, 1])


def test_soft_teacher_votes_carry_their_confidence():
    # A teacher that is right 70% of the time but knows when: probability 0.95 when right, 0.55 when wrong.
    # Voting its probabilities lets the other sources overrule it where it hesitates. (With only two other
    # sources that split 1:1 exactly when it matters, confidence changes no argmax: four sources here.)
    gold, ids = simulate(4000, [0.7, 0.75, 0.7, 0.7], seed=7)
    right = ids[:, 0] == gold
    soft = one_hot(ids, 2)
    soft[:, 0] = np.where(right[:, None], 0.05 + 0.9 * soft[:, 0], 0.45 + 0.1 * soft[:, 0])
    hard_model, soft_model = DawidSkene(2).fit(one_hot(ids, 2)), DawidSkene(2).fit(soft)
    assert accuracy(soft_model.predict_proba(soft), gold) > accuracy(hard_model.predict_proba(one_hot(ids, 2)), gold) + 0.02


# ---------------------------------------------------------------------------------------- calibration

def test_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5000, 4)) * 2
    true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    gold = np.array([rng.choice(4, p=p) for p in true])
    overconfident = calibration.scale(true, 1 / 3)  # the teacher's logits are 3x too large
    assert calibration.fit_temperature(overconfident, gold) == pytest.approx(3.0, rel=0.1)
    assert calibration.fit_temperature(true, gold) == pytest.approx(1.0, rel=0.1)
    np.testing.assert_allclose(calibration.scale(overconfident, 3.0), true, atol=1e-3)  # up to the 1e-12 floor


# ---------------------------------------------------------------------------------- labelling functions

def test_keyword_and_regex_lfs(tmp_path):
    assert word_pattern(["win", "txt"]).search("WIN a prize") and not word_pattern(["win"]).search("windy day")
    assert word_pattern(["call now"]).search("please Call Now!")
    cfg = load_config(["data=sms_spam", "weak=sms_spam", f"paths.data={tmp_path}"])
    sources = {s.name: s for s in build_sources(cfg)}
    assert [s.name for s in sources.values()] == ["deberta-v3-nli", "mpnet", "kw_ham", "kw_spam", "re_spam"]
    texts = ["FREE entry: txt WIN to 87121", "see you at home later", "Claim £900 now", "windy today"]
    assert list(sources["kw_spam"].apply(texts)) == [1, -1, 1, -1]
    assert list(sources["re_spam"].apply(texts)) == [1, -1, 1, -1]  # a 5-digit short code, a £ amount


def test_lf_config_errors(tmp_path):
    base = ["data=sst2", "weak=sst2", f"paths.data={tmp_path}"]
    with pytest.raises(DistillError, match="unknown label"):
        build_sources(load_config(base + ["++weak.keywords.neutral=[meh]"]))
    with pytest.raises(DistillError, match="no teacher preset 'nope'"):
        build_sources(load_config(base + ["++weak.teachers.nope={}"]))
    with pytest.raises(DistillError, match="weak.teachers.mpnet"):
        build_sources(load_config(base + ["++weak.teachers.mpnet.templatez=[x]"]))
    with pytest.raises(DistillError, match="weak.regex.positive"):
        build_sources(load_config(base + ["++weak.regex.positive=['(']"]))


@pytest.mark.parametrize("name", ["sst2", "ag_news", "tweeteval_emotion", "sms_spam", "goemotions"])
def test_every_weak_preset_composes_with_its_data(name, tmp_path):
    data = "experiment=goemotions" if name == "goemotions" else f"data={name}"
    cfg = load_config([data, f"weak={name}", f"paths.data={tmp_path}"])
    sources = build_sources(cfg)  # label names, presets and patterns all checked here
    assert sum(s.is_teacher for s in sources) >= 2 and sum(not s.is_teacher for s in sources) >= 2
    assert artifacts.weak_dir(cfg).name.startswith(f"{name}-")


def test_a_source_named_teacher_is_the_runs_own_teacher(tmp_path):
    """weak=goemotions: `teacher` is the experiment's described mpnet, `preset: teacher` the same on MiniLM; the
    run's label_sets hold for both, and the weak key follows them (they make the votes)."""
    from distill.weak.sources import teacher_config

    cfg = load_config(["experiment=goemotions", "weak=goemotions", f"paths.data={tmp_path}"])
    teacher, minilm = (s.cfg.teacher for s in build_sources(cfg) if s.is_teacher)
    assert teacher.name == "mpnet" and teacher.descriptions == cfg.teacher.descriptions
    assert minilm.name == "minilm-embed" and minilm.model.endswith("all-MiniLM-L6-v2")
    assert minilm.descriptions == cfg.teacher.descriptions and minilm.label_sets == teacher.label_sets == "rate:auto"
    other = load_config(["experiment=goemotions", "weak=goemotions", f"paths.data={tmp_path}",
                         "teacher.label_sets=top:2"])
    assert artifacts.weak_dir(other) != artifacts.weak_dir(cfg)
    own = teacher_config(cfg, "x", {"preset": "teacher", "label_sets": "threshold:0.3"})
    assert own.teacher.label_sets == "threshold:0.3"  # a source's own rule wins
    with pytest.raises(DistillError, match="no teacher preset 'nope'.*`teacher` for the run's teacher"):
        teacher_config(cfg, "nope", {})


def test_python_hook(tmp_path, monkeypatch):
    (tmp_path / "my_lfs.py").write_text(textwrap.dedent("""
        def sentiment(texts):
            return ["positive" if "great" in t else None for t in texts]
        def broken(texts):
            return ["meh" for t in texts]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    # Every preset source switched off from the command line: a teacher by null, an LF by an empty list.
    base = ["data=sst2", "weak=sst2", "weak.teachers.deberta-v3-nli=null", "weak.teachers.mpnet=null",
            "weak.teachers.minilm-embed=null", "weak.keywords.negative=[]", "weak.keywords.positive=[]",
            f"paths.data={tmp_path}"]
    (hook,) = build_sources(load_config(base + ["weak.hook=my_lfs:sentiment"]))
    assert hook.name == "hook" and list(hook.apply(["a great film", "dull"])) == [1, -1]
    (broken,) = build_sources(load_config(base + ["weak.hook=my_lfs:broken"]))
    with pytest.raises(DistillError, match="unknown label"):
        broken.apply(["x"])
    with pytest.raises(DistillError, match="could not be loaded"):
        build_sources(load_config(base + ["weak.hook=my_lfs:missing"]))


def test_lf_summary_on_a_hand_example():
    # rows: a  b  c     gold
    ids = np.array([[0, 0, -1],   # 0
                    [0, 1, -1],   # 1   a and b conflict
                    [-1, 1, 1],   # 1
                    [1, -1, -1],  # 0   a alone, wrong
                    [-1, -1, 0]])  # 0  c alone
    rows = {r["source"]: r for r in lf_summary(ids, ["a", "b", "c"], ["neg", "pos"], gold=np.array([0, 1, 1, 0, 0]))}
    assert rows["a"]["coverage"] == 0.6 and rows["a"]["overlap"] == 0.4 and rows["a"]["conflict"] == 0.2
    assert rows["a"]["polarity"] == ["neg", "pos"] and rows["a"]["accuracy"] == pytest.approx(1 / 3)
    assert rows["b"]["coverage"] == 0.6 and rows["b"]["overlap"] == 0.6 and rows["b"]["conflict"] == 0.2
    assert rows["b"]["correct"] == 3 and rows["b"]["incorrect"] == 0
    assert rows["c"]["coverage"] == 0.4 and rows["c"]["overlap"] == 0.2 and rows["c"]["conflict"] == 0.0
    assert rows["c"]["accuracy"] == 1.0


# -------------------------------------------------------------------------------------- noise handling

def test_confident_learning_flags_planted_noise():
    rng = np.random.default_rng(0)
    vocab = {0: "awful dull boring bad mess", 1: "great fun lovely good charming", 2: "stocks market bank shares profit"}
    gold = rng.integers(0, 3, size=600)
    texts = [" ".join(rng.choice(vocab[g].split(), size=4)) + " the film a" for g in gold]
    noisy = gold.copy()
    flipped = rng.random(len(gold)) < 0.1
    noisy[flipped] = (gold[flipped] + rng.integers(1, 3, size=flipped.sum())) % 3
    x = noise.features(texts, np.zeros((len(texts), 1, 3)), ["tfidf"])
    report = noise.confident_flags(noise.out_of_sample_probs(x, noisy, 3, folds=5), noisy)
    recall = (report.flags & flipped).sum() / flipped.sum()
    precision = (report.flags & flipped).sum() / max(report.flags.sum(), 1)
    assert recall > 0.8 and precision > 0.8, (recall, precision)
    assert (report.suggested[report.flags & flipped] == gold[report.flags & flipped]).mean() > 0.9
    w = noise.weights(report, noisy, "downweight")
    assert ((w >= 0) & (w <= 1)).all() and (w[~report.flags] == 1).all() and (w[report.flags] < 1).all()
    assert (noise.weights(report, noisy, "drop")[report.flags] == 0).all()


# --------------------------------------------------------------------------------- stage=weak end to end

POS = ["a great movie", "good fun and great actors", "i love this film", "really good story", "fine and fun"]
NEG = ["an awful movie", "terrible plot and boring actors", "i hate this film", "really bad story", "so boring"]


@pytest.fixture
def weak_cfg(tmp_path, tiny_nli_2way, tiny_encoder):
    """The real weak=sst2 preset, its teachers' models laid out as tiny ones under paths.models."""
    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    pool = [(POS + NEG)[i % 10] + f" {'very ' * (i % 3)}" for i in range(60)]
    pd.DataFrame({"sentence": pool}).to_csv(data / "train.tsv", sep="\t", index=False)  # no gold column
    dev = [((POS + NEG)[i % 10], int(i % 10 < 5)) for i in range(20)]
    pd.DataFrame(dev, columns=["sentence", "label"]).to_csv(data / "dev.tsv", sep="\t", index=False)
    models = tmp_path / "models"
    models.mkdir()
    for name, target in (("deberta-v3-nli", tiny_nli_2way), ("all-mpnet-base-v2", tiny_encoder),
                         ("all-MiniLM-L6-v2", tiny_encoder)):
        (models / name).symlink_to(target, target_is_directory=True)

    def make(*extra):
        return load_config([
            "data=sst2", "weak=sst2", f"paths.data={tmp_path / 'data'}", f"paths.outputs={tmp_path / 'out'}",
            f"paths.models={models}", "data.pool_size=50", "label.shard_size=16", "weak.folds=3",
            "train.epochs=1", "train.batch_size=8", "eval.batch_sizes=[1,4]", "eval.bench_texts=8",
            "eval.warmup_batches=1", "eval.variants=[torch]", *extra])
    return make


def test_weak_stage_then_train_and_eval(weak_cfg):
    cfg = weak_cfg()
    result = weak.run(cfg)
    out = artifacts.weak_dir(cfg)
    pool = pd.read_parquet(out / "pool.parquet")
    assert result["labels_path"] == str(out / "pool.parquet") and len(pool) == 50
    assert {"id", "text", "prob_negative", "prob_positive", "label", "confidence", "weight", "noisy",
            "vote.deberta-v3-nli", "vote.kw_positive", "mpnet.prob_positive"} <= set(pool.columns)
    np.testing.assert_allclose(pool[["prob_negative", "prob_positive"]].sum(1), 1, atol=1e-5)
    assert pool["weight"].between(0, 1).all() and pool["weight"].dtype == np.float32
    # Keyword LFs vote where their words occur and abstain elsewhere.
    assert set(pool.loc[pool.text.str.contains("great"), "vote.kw_positive"]) == {"positive"}
    assert pool.loc[pool.text.str.contains("hate"), "vote.kw_positive"].isna().all()
    summary = json.loads((out / "summary.json").read_text())
    names = [r["name"] for r in summary["heldout"]]
    assert {"deberta-v3-nli", "mpnet", "minilm-embed", "kw_positive", "keywords (combined)", "majority_vote",
            "average", "dawid_skene"} <= set(names)
    assert summary["n_heldout"] == 20 and len(pd.read_parquet(out / "heldout.parquet")) == 20
    assert "| dawid_skene | label model |" in (out / "summary.md").read_text()
    # Each teacher's labels sit at their usual content-keyed path: a rerun labels nothing again.
    teacher_file = summary["sources"][0]["pool_labels"]
    stamp = (artifacts.Path(teacher_file).stat().st_mtime_ns)
    weak.run(cfg)
    assert artifacts.Path(teacher_file).stat().st_mtime_ns == stamp

    # With `weak` set, train learns from the combined labels and says so in its run name; eval scores them.
    trained = train.run(cfg)
    assert trained["labels_path"] == str(out / "pool.parquet")
    assert artifacts.run_name(cfg).startswith("weak-sst2-deberta-nli-6l-soft-")  # the default student
    metrics = evaluate.run(cfg)
    teacher_entry = metrics["models"][0]
    student_entry = next(m for m in metrics["models"] if m["role"] == "student")
    assert teacher_entry["name"] == "weak-sst2 (dawid_skene)" and teacher_entry["role"] == "teacher"
    assert teacher_entry["accuracy"] == next(r["accuracy"] for r in summary["heldout"] if r["name"] == "dawid_skene")
    assert 0 <= student_entry["agreement_with_teacher"] <= 1
    # the label model is timed as all its sources, so the student has a speed-up against it
    assert all(v > 0 for v in teacher_entry["samples_per_s"].values()), teacher_entry["samples_per_s"]
    assert student_entry["speedup_vs_teacher"]["4"] > 0


def test_a_label_model_is_as_slow_as_its_sources_together(weak_cfg, monkeypatch):
    """Each text goes through every source: seconds a text add up (teachers 0.1 s and 0.3 s, the labelling
    functions 0.1 s: 2 texts/s), whatever each one's own speed."""
    cost = {"deberta-v3-nli": 0.1, "mpnet": 0.3, "labelling functions": 0.1}

    def timed(cfg, predict, texts, desc):
        return {bs: {"samples_per_s": 1 / cost[desc], "seconds": 8 * cost[desc], "n_texts": 8, "repeats": 1,
                     "latency_ms_p50": 1.0, "latency_ms_p95": 2.0} for bs in cfg.eval.batch_sizes}

    monkeypatch.setattr(evaluate, "time_model", timed)
    monkeypatch.setattr(evaluate, "build_teacher", lambda teacher_cfg, labels: object())
    speed = evaluate.weak_speed(weak_cfg("weak.teachers.minilm-embed=null"), ["a text"])
    assert set(speed) == {1, 4}
    assert speed[4]["samples_per_s"] == pytest.approx(2.0) and speed[4]["latency_ms_p95"] == pytest.approx(6.0)


def test_weak_settings_change_the_key_not_the_teacher_labels(weak_cfg):
    a, b = weak_cfg(), weak_cfg("weak.label_model=average")
    assert artifacts.weak_dir(a) != artifacts.weak_dir(b)
    assert artifacts.student_dir(a) != artifacts.student_dir(b)
    (deberta_a, *_), (deberta_b, *_) = build_sources(a), build_sources(b)
    assert artifacts.labels_dir(deberta_a.cfg, "pool") == artifacts.labels_dir(deberta_b.cfg, "pool")
    # The student without `weak` is the usual single-teacher one.
    assert not artifacts.run_name(load_config(["data=sst2"])).startswith("weak-")


def test_train_without_weak_labels_says_run_weak_first(weak_cfg):
    with pytest.raises(DistillError, match="stage=weak"):
        train.run(weak_cfg())


def test_stage_all_with_weak_runs_weak_instead_of_label(weak_cfg):
    result = run_stage(weak_cfg("stage=all", "weak.noise=drop"))
    assert set(result) == {"weak", "train", "eval"}
    pool = pd.read_parquet(result["weak"]["labels_path"])
    assert set(pool["weight"].unique()) <= {0.0, 1.0}


# ---------------------------------------------------------------------------------------- integration

@pytest.mark.integration
def test_real_weak_supervision_on_a_sst2_slice(tmp_path):
    require_shared("data", "sst2", "train.tsv")
    for name in ("deberta-v3-nli", "all-mpnet-base-v2", "all-MiniLM-L6-v2"):
        models = require_model(name).parent
    cfg = load_config(["data=sst2", "weak=sst2", "stage=weak", f"paths.data={SHARED / 'data'}",
                       f"paths.outputs={tmp_path}", f"paths.models={models}",
                       "data.pool_size=200", "data.heldout_size=100"])
    result = run_stage(cfg)
    scores = {r["name"]: r for r in result["heldout"]}
    # Real zero-shot sources on real sentences: every teacher and the label model far above chance.
    for name in ("deberta-v3-nli", "mpnet", "dawid_skene", "majority_vote"):
        assert scores[name]["accuracy"] >= 0.7, scores[name]
    assert 0.05 < scores["keywords (combined)"]["coverage"] < 0.8


def test_weak_supervision_without_gold_labels(weak_cfg):
    """No gold anywhere: the label model still combines the sources, the student learns from it, and eval
    scores the student against the combined labels on texts it never trained on."""
    cfg = weak_cfg("data.heldout=null", "data.label_column=null")
    result = weak.run(cfg)
    assert result["heldout"] == [] and result["best_single_source"] is None and result["n_texts"] == 50
    summary = (Path(result["weak_dir"]) / "summary.md").read_text()
    assert "no gold labels to score it" in summary and "learned accuracy" in summary.lower()
    assert train.run(cfg)["holdout"]["n_texts"] == 5
    metrics = evaluate.run(cfg)
    assert metrics["gold"] is False and metrics["models"][0]["kind"] == "weak"
    assert metrics["models"][0]["samples_per_s"]["4"] > 0
    assert 0 <= metrics["models"][1]["agreement_with_teacher"] <= 1


def test_a_review_queue_under_weak_supervision_shows_every_source_and_the_noise_suggestion(weak_cfg):
    from distill.stages import run_stage

    cfg = weak_cfg("review.size=20", "review.random=5")
    weak.run(cfg)
    pool = pd.read_parquet(artifacts.weak_dir(cfg) / "pool.parquet")
    assert pool.loc[pool.noisy, "noise_suggests"].notna().all() and pool.loc[~pool.noisy, "noise_suggests"].isna().all()
    assert (pool.loc[pool.noisy, "noise_suggests"] != pool.loc[pool.noisy, "label"]).all()
    cfg.stage = "review"
    out = run_stage(cfg)
    queue = pd.read_csv(out["queue"], encoding="utf-8-sig")
    assert {"vote.deberta-v3-nli", "vote.kw_positive", "noise_suggests", "teacher_label", "gold"} <= set(queue.columns)
    assert out["random"] == 5 and len(queue) == 20 and queue["text"].is_unique


def test_answers_anchor_dawid_skene():
    """Known labels are held fixed through EM: the sources' accuracies follow them (right answers keep the
    good source's, wrong ones pull it down) and the known texts keep their labels."""
    rng = np.random.default_rng(3)
    n = 400
    gold = rng.integers(0, 2, n)
    good = np.where(rng.random(n) < 0.9, gold, 1 - gold)
    bad = np.where(rng.random(n) < 0.55, gold, 1 - gold)
    votes = one_hot(np.stack([good, bad], 1), 2)
    known = np.full(n, -1)
    known[:40] = gold[:40]
    anchored = DawidSkene(2).fit(votes, known=known)
    acc = anchored.accuracies()
    assert acc[0] > 0.85 and acc[1] < 0.65
    post = anchored.predict_proba(votes)
    assert (post[:40].argmax(1) == gold[:40]).mean() > 0.85
    with_known = DawidSkene(2).fit(votes, known=np.where(np.arange(n) < 40, 1 - gold, -1))  # wrong answers move it
    assert with_known.accuracies()[0] < acc[0]


def test_reviewed_answers_anchor_the_weak_label_model(weak_cfg, tmp_path):
    cfg = weak_cfg()
    first = weak.run(cfg)
    pool = pd.read_parquet(first["labels_path"])
    answers = tmp_path / "answers.csv"
    pd.DataFrame({"text": pool["text"][:12], "gold": ["positive" if any(w in t for w in ("great", "good", "love", "fine"))
                                                         else "negative" for t in pool["text"][:12]],
                  "part": ["random"] * 4 + ["chosen"] * 8}).to_csv(answers, index=False)
    anchored_cfg = weak_cfg(f"review.answers={answers}")
    assert artifacts.weak_dir(anchored_cfg) != artifacts.weak_dir(cfg)  # answers change the combined labels' key
    weak.run(anchored_cfg)
    summary = json.loads((artifacts.weak_dir(anchored_cfg) / "summary.json").read_text())
    chosen = set(pool["text"][4:12]) - set(pool["text"][:4])  # a text answered twice keeps its first answer
    assert summary["anchored_by_answers"] == pool["text"].isin(chosen).sum()  # the random ones are kept apart
    assert summary["reviewed_accuracy"]["kw_positive"]["n"] <= 4
    assert 0 <= summary["reviewed_accuracy"]["deberta-v3-nli"]["accuracy"] <= 1


# ------------------------------------------------------------------------------------------ multi-label

def per_label_votes(n=4000, seed=0):
    """Gold sets of two labels (each on about 20% of texts, independently, plus a none label); two teachers that
    find each label 60% and 55% of the time with 8% and 10% false alarms; and a keyword LF for the first label
    that fires on half of its texts and 2% of the others."""
    from omegaconf import OmegaConf

    from distill.weak.combine import SplitVotes
    from distill.weak.sources import Source

    rng = np.random.default_rng(seed)
    gold = (rng.random((n, 2)) < 0.2).astype(np.int64)
    said = [np.where(gold == 1, rng.random((n, 2)) < tpr, rng.random((n, 2)) < fpr).astype(np.int64)
            for tpr, fpr in ((0.6, 0.08), (0.55, 0.1))]
    fires = np.where(gold[:, 0] == 1, rng.random(n) < 0.5, rng.random(n) < 0.02)
    # probabilities whose threshold:0.5 sets are what each teacher says (the none label's own score is unused)
    probs = {f"t{i}": np.column_stack([np.where(s == 1, 0.9, 0.1), np.full(n, 0.5)]) for i, s in enumerate(said)}
    split = SplitVotes(texts=[str(i) for i in range(n)], probs=probs,
                       ids={**{name: p.argmax(1) for name, p in probs.items()}, "kw_a": np.where(fires, 0, -1)})
    rule = OmegaConf.create({"teacher": {"label_sets": "threshold:0.5"}})
    sources = [Source("t0", "teacher", cfg=rule), Source("t1", "teacher", cfg=rule), Source("kw_a", "keywords")]
    return gold, said, split, sources


def test_a_binary_label_model_a_label_lets_a_keyword_add_what_the_teachers_missed():
    from omegaconf import OmegaConf
    from sklearn.metrics import f1_score

    from distill.config import WeakConfig
    from distill.weak.perlabel import PerLabel

    gold, said, split, sources = per_label_votes()
    combiner = PerLabel(OmegaConf.structured(WeakConfig(name="t")), sources, ["a", "b", "none"], none=2).fit(split)
    assert [list(m) for m in combiner.members] == [[0, 1, 2], [0, 1], [0, 1]]  # the keyword votes on its label only
    sets = combiner.sets(combiner.predict(split)["dawid_skene"])
    # label a: the keyword's firings the teachers missed are added
    f1 = f1_score(gold[:, 0], sets[:, 0])
    assert f1 > max(f1_score(gold[:, 0], s[:, 0]) for s in said) + 0.03, f1
    both = (said[0] & said[1]).all(1)
    assert both.any() and (sets[both, :2] == 1).all()  # two labels at once, what one label a text cannot give
    assert (sets[:, 2] == (sets[:, :2].sum(1) == 0)).all()  # none: exactly when no other label is
    learned = combiner.learned()
    # the keyword's precision, estimated without gold: truly 0.1 / (0.1 + 0.016) = 0.86
    assert learned["kw_a"]["labels"] == ["a"] and learned["kw_a"]["precision"] == pytest.approx(0.86, abs=0.08)
    assert learned["kw_a"]["recall"] == pytest.approx(0.5, abs=0.1)  # it fires on half of a's texts
    assert learned["t0"]["labels"] == ["a", "b", "none"]


def test_multi_label_weak_settings_that_ask_for_one_label_a_text_say_so():
    from omegaconf import OmegaConf

    from distill.config import WeakConfig
    from distill.weak.perlabel import PerLabel

    _, _, _, sources = per_label_votes(n=10)
    for setting, message in ((dict(teacher_votes="soft"), "weak.teacher_votes=soft: on multi-label data"),
                             (dict(class_prior={"a": 0.5, "b": 0.5}), "weak.class_prior gives one label a text"),
                             (dict(label_sets="most"), "weak.label_sets='most'")):
        weak_settings = OmegaConf.merge(OmegaConf.structured(WeakConfig(name="t")), setting)
        with pytest.raises(DistillError, match=message):
            PerLabel(weak_settings, sources, ["a", "b"], none=None)
    with pytest.raises(DistillError, match="needs at least one teacher"):  # LFs say only where a label is
        PerLabel(OmegaConf.structured(WeakConfig(name="t")), sources[2:], ["a", "b"], none=None)


def test_weak_stage_on_multi_label_data_then_train_and_eval(weak_cfg):
    cfg = weak_cfg("data.multi_label=true", "teacher.label_sets=relative:0.9", "weak.teachers.deberta-v3-nli=null",
                   "weak.teachers.minilm-embed=null")
    weak.run(cfg)
    out = artifacts.weak_dir(cfg)
    pool = pd.read_parquet(out / "pool.parquet")
    assert {"labels", "vote.mpnet", "vote.kw_positive", "mpnet.prob_positive", "weight"} <= set(pool.columns)
    great = pool.text.str.contains("great")
    assert great.any() and set(pool.loc[great, "vote.kw_positive"]) == {"positive"}
    assert pool.loc[~pool.text.str.contains("|".join(cfg.weak.keywords.positive)), "vote.kw_positive"].isna().all()
    # each label's own probability (not one distribution), and the sets at weak.label_sets=threshold:0.5
    probs = pool[["prob_negative", "prob_positive"]].to_numpy()
    expected = [",".join(n for n, p in zip(["negative", "positive"], row) if p >= 0.5) or
                ["negative", "positive"][row.argmax()] for row in probs]
    assert pool["labels"].tolist() == expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["multi_label"] is True and summary["label_sets"] == "threshold:0.5"
    assert {"mpnet", "kw_positive", "kw_negative", "dawid_skene", "majority_vote"} <= {r["name"] for r in summary["heldout"]}
    assert "a binary label model a label" in (out / "summary.md").read_text()
    # the teacher's own label file keeps its sets at the run's rule (what it voted)
    teacher = pd.read_parquet(summary["sources"][0]["pool_labels"])
    assert summary["sources"][0]["label_sets"] == "relative:0.9" and "labels" in teacher.columns

    trained = train.run(cfg)
    assert trained["labels_path"] == str(out / "pool.parquet")
    metrics = evaluate.run(cfg)
    teacher_entry = metrics["models"][0]
    assert teacher_entry["name"] == "weak-sst2 (dawid_skene)" and teacher_entry["label_sets"] == "threshold:0.5"
    assert teacher_entry["micro_f1"] == pytest.approx(next(r["micro_f1"] for r in summary["heldout"]
                                                           if r["name"] == "dawid_skene"))
    assert teacher_entry["samples_per_s"]["4"] > 0
    assert 0 <= metrics["models"][1]["agreement_with_teacher"] <= 1


def test_the_docs_project_file_weak_block_runs_on_an_own_multi_label_file(tmp_path, monkeypatch, tiny_nli_2way,
                                                                           tiny_encoder):
    """docs/weak-supervision.md's `weak:` block, pasted into a project file beside an own file's `data:`."""
    import re

    import yaml

    from distill.config import PROJECT_FILE

    doc = (Path(__file__).parents[1] / "docs" / "weak-supervision.md").read_text()
    block = re.search(r"On your own file.*?```yaml\n(.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    texts = ["I was charged twice", "the app crashes on login", "reset my password please", "refund my payment",
             "error on the invoice page", "change my username"] * 5
    pd.DataFrame({"body": texts}).to_csv("tickets.csv", index=False)
    project = {"defaults": [{"override /data": "file"}],
               "data": {"pool": {"path": "tickets.csv"}, "text_columns": ["body"],
                        "labels": ["billing", "bug", "account"], "multi_label": True}, **yaml.safe_load(block)}
    Path(PROJECT_FILE).write_text(yaml.safe_dump(project))
    models = tmp_path / "models"
    models.mkdir()
    (models / "all-mpnet-base-v2").symlink_to(tiny_encoder, target_is_directory=True)
    cfg = load_config([f"teacher.model={tiny_nli_2way}", f"paths.models={models}", "label.shard_size=16"])
    assert cfg.weak.name == "tickets" and cfg.data.multi_label
    result = weak.run(cfg)
    pool = pd.read_parquet(result["labels_path"])
    assert len(pool) == 30 and {"vote.teacher", "vote.mpnet", "vote.kw_billing", "labels"} <= set(pool.columns)
    assert set(pool.loc[pool.text.str.contains("password"), "vote.kw_account"]) == {"account"}
