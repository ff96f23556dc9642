"""Structured pruning of students' feed-forward blocks (distill/prune.py) and stage=prune."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import build_tiny_bert, build_tiny_deberta
from distill.errors import DistillError
from distill.prune import ffn_importance, ffn_pairs, prune_ffn
from distill.stages import evaluate, label, prune, train
from test_stages import make_cfg  # noqa: F401  (a fixture)

LABELS = {0: "negative", 1: "positive"}
TEXTS = ["the movie was great", "awful", "i think this plot is very good , really", "bad fun", "so boring"]


def logits(model, tokenizer, texts=TEXTS):
    with torch.inference_mode():
        return model.eval()(**tokenizer(texts, padding=True, return_tensors="pt")).logits


@pytest.mark.parametrize("build", [build_tiny_bert, build_tiny_deberta])
def test_units_the_model_does_not_use_are_the_ones_pruned_and_outputs_stay_the_same(build, tmp_path):
    """Half of every layer's units get a zero output column: they change nothing, so their importance is
    zero, they are the ones dropped, and the pruned model gives exactly the same logits."""
    build(tmp_path, LABELS)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    width = model.config.intermediate_size
    dead = torch.arange(0, width, 2)  # every other unit
    for layer, _, out in ffn_pairs(model):
        layer.get_submodule(out).weight.data[:, dead] = 0
    want = logits(model, tokenizer)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]], dtype=np.float32)
    scores = ffn_importance(model, tokenizer, TEXTS, probs, temperature=2.0, batch_size=2)
    assert all(s[dead].abs().max() == 0 and (s[1::2] > 0).all() for s in scores)
    prune_ffn(model, width // 2, scores)
    assert model.config.intermediate_size == width // 2
    assert all(layer.get_submodule(i).out_features == width // 2 for layer, i, _ in ffn_pairs(model))
    assert torch.allclose(logits(model, tokenizer), want, atol=1e-5)
    model.save_pretrained(tmp_path / "pruned")  # loads back as an ordinary, narrower model
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pruned")
    assert torch.allclose(logits(again, tokenizer), want, atol=1e-5)


def test_prune_size_out_of_range_is_a_config_error(tmp_path):
    build_tiny_bert(tmp_path, LABELS)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    scores = [torch.ones(model.config.intermediate_size)] * 2
    with pytest.raises(DistillError, match="prune.ffn_size=65: .* have 64 units"):
        prune_ffn(model, 65, scores)
    with pytest.raises(DistillError, match="no texts"):
        ffn_importance(model, AutoTokenizer.from_pretrained(tmp_path), [], np.zeros((0, 2)))


def test_prune_stage_cuts_a_trained_student_and_eval_all_measures_it(make_cfg):  # noqa: F811
    cfg = make_cfg("prune.ffn_size=16", "prune.epochs=1", "prune.texts=8")
    with pytest.raises(DistillError, match="no trained student at .*run stage=train"):
        prune.run(cfg)
    label.run(cfg)
    trained = train.run(cfg)
    result = prune.run(cfg)
    assert result["student_dir"] == trained["student_dir"] + "-ffn16" and result["cached"] is False
    pruned = AutoModelForSequenceClassification.from_pretrained(result["student_dir"])
    assert pruned.config.intermediate_size == 16
    assert prune.run(cfg)["cached"] is True
    report = evaluate.run(make_cfg("eval.students=all", "eval.variants=[torch]", "eval.plots=false"))
    assert sorted(m["name"] for m in report["models"][1:]) == ["minilm (soft)", "minilm-ffn16 (soft)"]
    with pytest.raises(DistillError, match="needs prune.ffn_size"):
        prune.run(make_cfg())
