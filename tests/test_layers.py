"""student.layers: keep an encoder's first N transformer layers (a smaller, faster student)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from distill.config import StudentConfig, TrainConfig
from distill.errors import DistillError
from distill.students.finetune import StudentClassifier
from distill.students.layers import keep_first_layers, layer_stack
from distill.students.trainers import train_student

from conftest import build_tiny_bert, build_tiny_deberta, tiny_deberta_config


def tiny_deberta(layers: int = 3):
    torch.manual_seed(0)
    return DebertaV2ForSequenceClassification(tiny_deberta_config(num_hidden_layers=layers)).eval()


def tiny_distilbert(layers: int = 3):
    torch.manual_seed(0)
    return DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=100, dim=32, n_layers=layers, n_heads=2, hidden_dim=64, max_position_embeddings=128)).eval()


@pytest.mark.parametrize("make", [tiny_deberta, tiny_distilbert], ids=["deberta-v2", "distilbert"])
def test_keeps_the_first_layers_with_their_weights_and_saves_a_smaller_model(make, tmp_path):
    model = make(3)
    first = [layer.state_dict() for layer in list(layer_stack(model))[:2]]
    ids = torch.randint(5, 100, (2, 9))
    keep_first_layers(model, 2)
    assert len(layer_stack(model)) == 2
    kept = [layer.state_dict() for layer in layer_stack(model)]
    for want, got in zip(first, kept):
        assert all(torch.equal(want[k], got[k]) for k in want)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert len(layer_stack(reloaded)) == 2
    with torch.inference_mode():
        assert torch.allclose(model(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-6)


def test_none_or_more_than_there_are_keeps_every_layer_and_under_one_is_a_config_error(caplog):
    model = tiny_deberta(3)
    assert len(layer_stack(keep_first_layers(model, None))) == 3
    assert len(layer_stack(keep_first_layers(model, 3))) == 3 and not caplog.records
    # the default student asks for 6 layers; a smaller `student.model=` keeps what it has, with a warning
    assert len(layer_stack(keep_first_layers(model, 6))) == 3
    assert "student.layers=6: the student has only 3 layers" in caplog.text
    for bad in (0, -1):
        with pytest.raises(DistillError, match=f"student.layers={bad}: keep at least 1 of the student's 3 layers"):
            keep_first_layers(model, bad)
    assert len(layer_stack(model)) == 3  # a refused request leaves the model whole


def test_a_model_without_a_layer_stack_is_named():
    model = torch.nn.Linear(2, 2)
    model.config = type("Config", (), {"num_hidden_layers": 4})()
    with pytest.raises(DistillError, match="cannot find the transformer layers of Linear"):
        keep_first_layers(model, 2)


def test_train_student_with_fewer_layers_writes_and_loads_the_smaller_student(tmp_path):
    encoder = build_tiny_bert(tmp_path / "encoder", {0: "LABEL_0", 1: "LABEL_1"}, seed=3, layers=3)
    texts = [f"the movie was {w}" for w in ("great", "good", "awful", "terrible")] * 5
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.8, 0.2]] * 5, dtype=np.float32)
    student = OmegaConf.structured(StudentConfig(name="tiny", model=str(encoder), max_length=32, layers=1))
    train = OmegaConf.structured(TrainConfig(epochs=1, batch_size=8, device="cpu"))
    train_student(texts, probs, ["negative", "positive"], student, train, tmp_path / "student")
    assert AutoConfig.from_pretrained(tmp_path / "student").num_hidden_layers == 1
    assert json.loads((tmp_path / "student" / "distill_train.json").read_text())["student"]["layers"] == 1
    clf = StudentClassifier(tmp_path / "student", device="cpu")
    assert len(layer_stack(clf.model)) == 1 and clf.predict_proba(texts[:3]).shape == (3, 2)


def test_embedding_lr_students_refuse_layers(tiny_encoder, tmp_path):
    student = OmegaConf.structured(StudentConfig(name="lr", kind="embedding_lr", model=str(tiny_encoder), layers=1))
    train = OmegaConf.structured(TrainConfig(device="cpu"))
    with pytest.raises(DistillError, match="student.layers applies to fine-tuned students"):
        train_student(["good", "bad"] * 5, np.array([[0.2, 0.8], [0.8, 0.2]] * 5, dtype=np.float32),
                      ["negative", "positive"], student, train, tmp_path)


def test_a_deberta_student_predicts_with_distills_attention_and_the_same_probabilities(tmp_path, monkeypatch):
    """StudentClassifier installs distill.runtime.fast_deberta in a DeBERTa-v2 student: its attention runs and
    the probabilities are those of the unpatched model."""
    from transformers import AutoTokenizer

    from distill.runtime import fast_deberta

    build_tiny_deberta(tmp_path, {0: "negative", 1: "positive"})
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    texts = ["the movie was great", "awful", "i think this plot is very good , really"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        want = torch.softmax(model(**enc).logits, -1).numpy()
    calls = []
    real = fast_deberta.skewed_attention
    monkeypatch.setattr(fast_deberta, "skewed_attention", lambda *a: calls.append(1) or real(*a))
    got = StudentClassifier(tmp_path, device="cpu").predict_proba(texts, batch_size=3)
    assert calls and np.abs(got - want).max() < 1e-5
