"""The label shortlist: a ranker picks each text's top-k labels, the NLI teacher scores only those."""
from __future__ import annotations

import numpy as np
import pytest

from distill import artifacts
from distill.config import load_config
from distill.errors import DistillError
from distill.teachers import NLITeacher, build_teacher
from distill.teachers.shortlist import AUTO_K, ShortlistTeacher, shortlist_k

LABELS = ["sports", "politics", "science", "business", "music", "food"]
TEXTS = ["the match ended in a draw", "parliament passed the bill", "a new planet was found", "shares fell",
         "the band played all night", "a recipe for bread", "ok", "the team won the cup and the minister came"]


def cfg(tiny_nli_2way, tiny_encoder, *extra, labels=LABELS):
    return load_config([f"teacher.model={tiny_nli_2way}", f"teacher.ranker={tiny_encoder}", "teacher.device=cpu",
                        "teacher.dtype=float32", f"data.labels=[{','.join(labels)}]", *extra])


def test_single_label_probabilities(tiny_nli_2way, tiny_encoder):
    c = cfg(tiny_nli_2way, tiny_encoder, "teacher.shortlist=3")
    teacher = build_teacher(c.teacher, LABELS)
    assert isinstance(teacher, ShortlistTeacher) and teacher.k == 3
    probs = teacher.predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), 6) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    rank = teacher.ranker.predict_proba(TEXTS)
    keep = np.zeros_like(rank, bool)
    np.put_along_axis(keep, np.argsort(-rank, 1)[:, :3], True, 1)
    assert keep.sum() == 3 * len(TEXTS)
    np.testing.assert_allclose(probs[~keep], rank[~keep], rtol=1e-6)  # the ranker's, where not scored
    # where scored: the ranker's mass on the shortlist, split as the full teacher's softmax over those labels
    full = build_teacher(cfg(tiny_nli_2way, tiny_encoder, "teacher.shortlist=off").teacher, LABELS).predict_proba(TEXTS)
    mass = (rank * keep).sum(1, keepdims=True)
    expected = mass * np.where(keep, full, 0) / np.where(keep, full, 0).sum(1, keepdims=True)
    np.testing.assert_allclose(probs[keep], expected[keep], atol=1e-5)


def test_k_at_least_the_label_count_is_the_full_teacher_exactly(tiny_nli_2way, tiny_encoder):
    off = build_teacher(cfg(tiny_nli_2way, tiny_encoder, "teacher.shortlist=off").teacher, LABELS)
    same = build_teacher(cfg(tiny_nli_2way, tiny_encoder, "teacher.shortlist=6").teacher, LABELS)
    assert type(same) is NLITeacher  # no ranker is even built
    assert np.array_equal(same.predict_proba(TEXTS), off.predict_proba(TEXTS))
    # the shortlist path itself with every label kept gives the same probabilities
    whole = ShortlistTeacher(off, cfg(tiny_nli_2way, tiny_encoder).teacher, LABELS, 6)
    np.testing.assert_allclose(whole.predict_proba(TEXTS), off.predict_proba(TEXTS), atol=1e-6)


def test_multi_label_keeps_each_scored_label_own_probability(tiny_nli_2way, tiny_encoder):
    c = cfg(tiny_nli_2way, tiny_encoder, "teacher.shortlist=2", "teacher.multi_label=true")
    teacher = build_teacher(c.teacher, LABELS)
    probs = teacher.predict_proba(TEXTS)
    full = build_teacher(cfg(tiny_nli_2way, tiny_encoder, "teacher.shortlist=off", "teacher.multi_label=true").teacher,
                         LABELS).predict_proba(TEXTS)
    rank = teacher.ranker.predict_proba(TEXTS)
    keep = np.zeros_like(rank, bool)
    np.put_along_axis(keep, np.argsort(-rank, 1)[:, :2], True, 1)
    np.testing.assert_allclose(probs[keep], full[keep], atol=1e-5)
    np.testing.assert_allclose(probs[~keep], rank[~keep], rtol=1e-6)


def test_auto_turns_on_only_for_many_labels(tiny_nli_2way, tiny_encoder):
    few = cfg(tiny_nli_2way, tiny_encoder)
    assert shortlist_k(few.teacher, 6) is None and "shortlist" not in artifacts.teacher_identity(few)
    many = [f"topic{i}" for i in range(20)]
    c = cfg(tiny_nli_2way, tiny_encoder, labels=many)
    assert shortlist_k(c.teacher, 20) == AUTO_K
    assert artifacts.teacher_identity(c)["shortlist"]["k"] == AUTO_K
    assert artifacts.label_cache(c) != artifacts.label_cache(cfg(tiny_nli_2way, tiny_encoder, "teacher.shortlist=off",
                                                                 labels=many))
    assert shortlist_k(load_config(["teacher=mpnet"]).teacher, 50) is None  # an embedding teacher is one pass already


@pytest.mark.parametrize("value, message", [("many", "is not auto, off or a number"), ("-1", "at least 1")])
def test_bad_shortlist_values(value, message):
    with pytest.raises(DistillError, match=message):
        shortlist_k(load_config([f"teacher.shortlist={value}"]).teacher, 20)


@pytest.mark.integration
def test_bench_labels_scaling_on_real_models(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from conftest import require_model, require_shared

    require_shared("data", "goemotions", "dev.tsv")
    require_model("deberta-v3-nli")
    require_model("all-MiniLM-L6-v2")
    out = tmp_path / "s.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_labels_scaling.py"
    done = subprocess.run([sys.executable, str(script), "--texts", "6", "--sets", "2,28", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {(r["labels"], r["mode"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows[(2, "default")]["k"] is None and rows[(2, "default")]["agreement_with_full"] == 1.0  # auto: off
    assert rows[(28, "default")]["k"] == AUTO_K and rows[(28, "full")]["pairs_per_s"] > 0
