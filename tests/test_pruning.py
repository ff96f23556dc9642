"""Structured pruning of students' feed-forward blocks (distill/students/pruning.py) and stage=prune."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_stages import make_cfg  # noqa: F401  (a fixture)
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.errors import DistillError
from distill.stages import evaluate, label, prune, train
from distill.students.pruning import ffn_importance, ffn_pairs, prune_ffn

from conftest import build_tiny_bert, build_tiny_deberta

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
    assert sorted(m["name"] for m in report["models"][1:]) == ["deberta-nli-6l (soft)", "deberta-nli-6l-ffn16 (soft)"]
    with pytest.raises(DistillError, match="needs prune.ffn_size .* and/or prune.drop_layers"):
        prune.run(make_cfg())


def test_the_layer_dropped_is_the_one_whose_absence_raises_the_loss_least(tmp_path):
    """Checked against removing each layer from a separate copy of the model; the result saves and loads
    back as an ordinary shallower model with the same logits."""
    import copy

    from distill.students.layers import layer_stack
    from distill.students.pruning import distillation_loss, drop_layers

    build_tiny_bert(tmp_path, LABELS, layers=3)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]], dtype=np.float32)
    losses = []
    for j in range(3):
        copied = copy.deepcopy(model)
        del layer_stack(copied)[j]
        losses.append(distillation_loss(copied, tokenizer, TEXTS, probs, 2.0))
    assert len(set(np.round(losses, 6))) == 3  # a real choice
    assert drop_layers(model, tokenizer, 1, TEXTS, probs, temperature=2.0) == [int(np.argmin(losses))]
    assert model.config.num_hidden_layers == 2 and len(layer_stack(model)) == 2
    want = logits(model, tokenizer)
    model.save_pretrained(tmp_path / "dropped")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "dropped")
    assert again.config.num_hidden_layers == 2 and torch.allclose(logits(again, tokenizer), want, atol=1e-5)
    with pytest.raises(DistillError, match="prune.drop_layers=2: the student has 2 layers"):
        drop_layers(model, tokenizer, 2, TEXTS, probs)
    with pytest.raises(DistillError, match="no texts"):
        drop_layers(model, tokenizer, 1, [], np.zeros((0, 2)))


def test_prune_stage_drops_layers_and_fine_tunes_on_an_assistants_labels(make_cfg):  # noqa: F811
    """The teacher-assistant recipe of run_comparison.sh in small: a trained student labels a larger pool, and a
    cut copy of the student (one layer fewer) is fine-tuned on those labels."""
    import json
    from pathlib import Path

    cfg = make_cfg()
    label.run(cfg)
    trained = train.run(cfg)
    assistant = make_cfg("teacher=assistant", f"teacher.model={trained['student_dir']}", "teacher.variant=torch",
                         "data.pool_size=40")
    labels_path = label.run(assistant)["labels_path"]
    cut = make_cfg("prune.drop_layers=1", f"prune.labels_path={labels_path}",
                   "prune.epochs=1", "prune.texts=8")
    result = prune.run(cut)
    folder = result["student_dir"]
    assert folder.startswith(trained["student_dir"] + "-drop1-assistant-pool-") and result["cached"] is False
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.num_hidden_layers == 1
    record = json.loads((Path(folder) / "distill_config.json").read_text())
    assert record["labels_path"] == labels_path and len(record["dropped_layers"]) == 1
    trained_record = json.loads((Path(folder) / "distill_train.json").read_text())
    assert trained_record["n_texts"] > 32 and trained_record["student"]["name"] == "deberta-nli-6l-drop1-assistant"
    assert prune.run(cut)["cached"] is True
    # eval.students=all follows the assistant: its labels came from a student of this labelling
    report = evaluate.run(make_cfg("eval.students=all", "eval.variants=[torch]", "eval.plots=false"))
    assert sorted(m["name"] for m in report["models"][1:]) == ["deberta-nli-6l (soft)",
                                                                 "deberta-nli-6l-drop1-assistant (soft)"]
    with pytest.raises(DistillError, match="prune.labels_path: .* does not exist"):
        prune.run(make_cfg("prune.drop_layers=1", "prune.labels_path=/nowhere/labels.parquet"))
    with pytest.raises(DistillError, match="prune.drop_layers=-1 must be 0 or more"):
        prune.run(make_cfg("prune.drop_layers=-1"))

