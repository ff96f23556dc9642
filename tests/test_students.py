"""Student training and prediction on tiny random encoders: the loss, the trainer, the saved folder."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from transformers import AutoConfig, pipeline

from distill.config import StudentConfig, TrainConfig
from distill.errors import DistillError
from distill.runtime.device import STUDENT_CPU_MAX_TOKENS
from distill.students.finetune import StudentClassifier, build_trainer
from distill.students.losses import soft_cross_entropy
from distill.students.trainers import train_student
from distill.students.trainset import LabelledTexts

NOUNS = ["movie", "film", "plot", "story", "game", "team", "actors", "phone", "market", "news"]
FRAMES = ["the {n} was {a}", "{a} {n} , really", "i think this {n} is very {a}"]
TOPICS = ["world", "sports", "business", "tech"]


def sentiment(n_per_class: int):
    """Texts separable by one word: great/good -> positive, awful/terrible -> negative."""
    def texts(adjectives):
        return [f.format(n=n, a=a) for f in FRAMES for n in NOUNS for a in adjectives][:n_per_class]
    pos, neg = texts(["great", "good"]), texts(["awful", "terrible"])
    return pos + neg, ["positive"] * len(pos) + ["negative"] * len(neg)


def teacher_probs(gold, labels, confidence=0.8):
    """Teacher-like soft rows: `confidence` on the gold label, the rest spread over the others."""
    probs = np.full((len(gold), len(labels)), (1 - confidence) / (len(labels) - 1), dtype=np.float32)
    probs[np.arange(len(gold)), [labels.index(g) for g in gold]] = confidence
    return probs


def configs(encoder, **train):
    student = OmegaConf.structured(StudentConfig(name="tiny", model=str(encoder), max_length=32))
    train = OmegaConf.structured(TrainConfig(**{"epochs": 1, "batch_size": 8, "device": "cpu", **train}))
    return student, train


# --- the loss -------------------------------------------------------------------------------------------

def test_soft_ce_with_one_hot_teacher_is_plain_cross_entropy():
    logits, gold = torch.randn(6, 4), torch.tensor([0, 3, 1, 2, 2, 0])
    loss = soft_cross_entropy(logits, F.one_hot(gold, 4).float(), temperature=1.0)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, gold).item(), abs=1e-4)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_soft_ce_is_minimal_with_zero_gradient_when_student_matches_teacher(temperature):
    probs = torch.softmax(torch.randn(5, 3), dim=-1)
    # logits = log p gives softmax(z / T) = p^(1/T) / Z: exactly the softened teacher
    logits = probs.log().clone().requires_grad_(True)
    loss = soft_cross_entropy(logits, probs, temperature)
    loss.backward()
    assert logits.grad.abs().max().item() < 1e-5
    for _ in range(3):
        assert soft_cross_entropy(logits.detach() + 0.5 * torch.randn(5, 3), probs, temperature) > loss


def test_soft_ce_temperature_softens_both_sides_and_scales_by_t_squared():
    logits, probs, t = torch.randn(4, 3), torch.softmax(torch.randn(4, 3), dim=-1), 3.0
    softened = probs ** (1 / t) / (probs ** (1 / t)).sum(dim=-1, keepdim=True)
    by_hand = -(softened * F.log_softmax(logits / t, dim=-1)).sum(dim=-1).mean() * t * t
    assert soft_cross_entropy(logits, probs, t).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert soft_cross_entropy(logits, probs, t).item() == pytest.approx(
        t * t * soft_cross_entropy(logits / t, softened, 1.0).item(), rel=1e-5)


def test_soft_ce_weights_give_a_weighted_mean():
    logits, probs = torch.randn(3, 2), torch.softmax(torch.randn(3, 2), dim=-1)
    rows = [soft_cross_entropy(logits[i:i + 1], probs[i:i + 1]).item() for i in range(3)]
    weighted = soft_cross_entropy(logits, probs, weights=torch.tensor([1.0, 0.0, 3.0]))
    assert weighted.item() == pytest.approx((rows[0] + 3 * rows[2]) / 4, rel=1e-5)


# --- the trainer ----------------------------------------------------------------------------------------

def topic_trainer(encoder, tmp_path, probs, **train):
    texts = ["the team won the game", "stocks and the market", "space science news", "the phone is new",
             "world news now", "a fun game", "sci tech phone", "business market"]
    student, train = configs(encoder, **train)
    trainer = build_trainer(LabelledTexts(texts, probs), None, TOPICS, student, train, tmp_path)
    return trainer, next(iter(trainer.get_train_dataloader()))


def test_float_probabilities_survive_the_collator(tiny_encoder, tmp_path):
    probs = teacher_probs(["world", "sports", "business", "tech"] * 2, TOPICS, confidence=0.7)
    trainer, batch = topic_trainer(tiny_encoder, tmp_path, probs)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].shape == (8, 4)
    # the train sampler shuffles, so compare the rows as a multiset
    assert sorted(map(tuple, batch["labels"].tolist())) == sorted(map(tuple, probs.tolist()))
    # dynamic padding: to the longest text of the batch, not to student.max_length
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(dim=1).max()) < 32


def test_soft_loss_starts_at_ln_k_and_the_model_never_sees_float_labels(tiny_encoder, tmp_path):
    near_uniform = np.full((8, 4), 0.25, dtype=np.float32) + np.linspace(-0.01, 0.01, 4, dtype=np.float32)
    trainer, batch = topic_trainer(tiny_encoder, tmp_path, near_uniform, temperature=1.0)
    model = trainer.model.eval()
    # the tiny encoder is drawn with std 0.3; a fresh head on a real checkpoint starts near zero, as here
    torch.nn.init.zeros_(model.classifier.weight)
    torch.nn.init.zeros_(model.classifier.bias)
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(sorted(kwargs)), with_kwargs=True)
    loss = trainer.compute_loss(model, batch).item()
    assert seen and all("labels" not in keys for keys in seen)
    # soft cross-entropy of a uniform student is ln K; had the labels reached the model, its BCE gives ln 2
    assert loss == pytest.approx(math.log(4), abs=0.1)
    assert model.config.problem_type is None  # BERT sets multi_label_classification when it sees float labels


def test_hard_targets_reach_the_loss_as_class_ids(tiny_encoder, tmp_path):
    gold = ["tech", "world", "sports", "business"] * 2
    trainer, batch = topic_trainer(tiny_encoder, tmp_path, teacher_probs(gold, TOPICS), targets="hard")
    assert batch["labels"].dtype == torch.int64 and batch["labels"].shape == (8,)
    loss, outputs = trainer.compute_loss(trainer.model.eval(), batch, return_outputs=True)
    assert loss.item() == pytest.approx(F.cross_entropy(outputs.logits, batch["labels"]).item(), rel=1e-5)


# --- train_student and StudentClassifier ----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tiny_encoder, tmp_path_factory):
    texts, gold = sentiment(20)
    folder = tmp_path_factory.mktemp("student")
    student, train = configs(tiny_encoder, epochs=2)
    summary = train_student(texts, teacher_probs(gold, ["negative", "positive"]), ["negative", "positive"],
                            student, train, folder)
    return folder, texts, summary


def test_train_student_writes_a_self_contained_folder(trained):
    folder, texts, summary = trained
    assert summary["n_labelled"] == len(texts) == 40 and math.isfinite(summary["train_loss"])
    # a seeded tenth is the teacher-labelled validation split that picks the best checkpoint
    assert (summary["n_train"], summary["n_val"]) == (36, 4) and summary["n_texts"] == 36
    assert 0 <= summary["val_agreement"] <= 1 and summary["best_checkpoint"].startswith("checkpoint-")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert not (folder / "checkpoints").exists()
    config = AutoConfig.from_pretrained(folder)
    assert config.id2label == {0: "negative", 1: "positive"}
    assert config.problem_type != "multi_label_classification"  # else pipelines would apply a sigmoid
    meta = json.loads((folder / "distill_train.json").read_text())
    assert meta["n_labelled"] == 40 and meta["train"]["targets"] == "soft" and meta["student"]["name"] == "tiny"
    assert meta["label_distribution"]["argmax_counts"] == {"negative": 20, "positive": 20}


def test_pipeline_loads_the_folder_and_agrees_with_student_classifier(trained):
    folder, texts, _ = trained
    scores = pipeline("text-classification", model=str(folder), device="cpu", top_k=None)(texts[:4])
    probs = StudentClassifier(folder, device="cpu").predict_proba(texts[:4])
    for row, expected in zip(scores, probs):
        by_name = {s["label"]: s["score"] for s in row}
        assert set(by_name) == {"negative", "positive"}
        assert [by_name["negative"], by_name["positive"]] == pytest.approx(expected.tolist(), abs=1e-5)


def test_predict_proba_shape_order_and_batch_size_independence(trained):
    folder, texts, _ = trained
    clf = StudentClassifier(folder, device="cpu")
    assert clf.labels == ["negative", "positive"] and clf.name == "tiny"
    probs = clf.predict_proba(texts, batch_size=7)
    assert probs.dtype == np.float32 and probs.shape == (40, 2)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    perm = np.random.default_rng(0).permutation(len(texts))
    assert np.allclose(clf.predict_proba([texts[i] for i in perm], batch_size=7), probs[perm], atol=1e-5)
    assert np.allclose(clf.predict_proba(texts, batch_size=1), probs, atol=1e-5)
    assert np.allclose(clf.predict_proba(texts, batch_size=64, progress=True), probs, atol=1e-5)
    assert clf.describe()["num_parameters"] > 0 and clf.describe()["device"] == "cpu"
    assert clf.predict_proba([], batch_size=7).shape == (0, 2)


def test_a_cpu_student_caps_the_padded_tokens_of_a_batch(trained, monkeypatch):
    folder, texts, _ = trained
    clf = StudentClassifier(folder, device="cpu")
    assert clf.max_tokens == STUDENT_CPU_MAX_TOKENS
    whole = clf.predict_proba(texts, batch_size=64)
    shapes = []
    probs = clf._probs
    monkeypatch.setattr(clf, "_probs", lambda batch: shapes.append(tuple(batch["input_ids"].shape)) or probs(batch))
    clf.max_tokens = 16
    assert np.allclose(clf.predict_proba(texts, batch_size=64), whole, atol=1e-5)  # same answers
    assert sum(n for n, _ in shapes) == len(texts) and len(shapes) > 1
    assert all(n * length <= 16 or n == 1 for n, length in shapes)  # each batch within the cap
    assert [length for _, length in shapes] == sorted((length for _, length in shapes), reverse=True)


def test_train_student_with_hard_targets(tiny_encoder, tmp_path):
    texts, gold = sentiment(20)
    student, train = configs(tiny_encoder, targets="hard")
    train_student(texts, teacher_probs(gold, ["negative", "positive"]), ["negative", "positive"],
                  student, train, tmp_path)
    assert json.loads((tmp_path / "distill_train.json").read_text())["train"]["targets"] == "hard"
    predictions = pipeline("text-classification", model=str(tmp_path), device="cpu")(texts[:3])
    assert {p["label"] for p in predictions} <= {"negative", "positive"}


def test_student_learns_a_separable_task(tiny_encoder, tmp_path):
    texts, gold = sentiment(30)
    labels = ["negative", "positive"]
    # 12 epochs at lr 5e-3 reached 1.0 on 21 of 21 seeds tried; 6 epochs at 3e-3 fell to 0.6 on some
    # no early stopping: at lr 5e-3 the tiny model's validation loss jumps about before it settles
    student, train = configs(tiny_encoder, epochs=12, lr=5e-3, early_stopping_patience=None)
    train_student(texts, teacher_probs(gold, labels, confidence=0.9), labels, student, train, tmp_path)
    predicted = StudentClassifier(tmp_path, device="cpu").predict_proba(texts).argmax(axis=1)
    assert np.mean(predicted == np.array([labels.index(g) for g in gold])) >= 0.9


# --- errors ---------------------------------------------------------------------------------------------

def test_unknown_targets_name_the_key_and_the_choices(tiny_encoder):
    """train.targets is a closed choice of the schema: a wrong value fails when it is set, naming the choices."""
    from omegaconf.errors import ValidationError

    with pytest.raises(ValidationError, match=r"Invalid value 'softest', expected one of \[soft, hard\]"):
        configs(tiny_encoder, targets="softest")


def test_mismatched_probabilities_are_reported(tiny_encoder, tmp_path):
    student, train = configs(tiny_encoder)
    with pytest.raises(DistillError, match=r"shape \(3, 2\).*\(4, 2\)"):
        train_student(["a", "b", "c", "d"], np.full((3, 2), 0.5), ["negative", "positive"],
                      student, train, tmp_path)


def test_missing_student_folder_says_to_train_first(tmp_path):
    with pytest.raises(DistillError, match=r"run stage=train first") as err:
        StudentClassifier(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


def test_a_folder_without_a_model_is_a_one_line_load_error(tmp_path):
    (tmp_path / "empty").mkdir()
    student, train = configs(tmp_path / "empty", val_fraction=0)
    with pytest.raises(DistillError, match=r"student\.model: could not load"):
        train_student(["a", "b"], np.full((2, 2), 0.5), ["negative", "positive"], student, train, tmp_path / "out")


def test_a_time_limit_stops_training_and_keeps_the_best_checkpoint(tiny_encoder, tmp_path, caplog):
    texts, gold = sentiment(20)
    student, train = configs(tiny_encoder, epochs=3, max_minutes=1e-6)  # passed after the first step
    with caplog.at_level("WARNING", logger="distill.students.finetune"):
        summary = train_student(texts, teacher_probs(gold, ["negative", "positive"]), ["negative", "positive"],
                                student, train, tmp_path)
    assert summary["steps"] == 1 and summary["stopped_at_time_limit"]["step"] == 1  # of 15
    assert summary["val_agreement"] is not None and summary["best_checkpoint"] == "checkpoint-1"
    assert "stopping at the time limit (train.max_minutes=1e-06)" in caplog.text
    assert StudentClassifier(tmp_path, device="cpu").predict_proba(texts[:2]).shape == (2, 2)
    with pytest.raises(DistillError, match="train.max_minutes must be above 0"):
        train_student(texts, teacher_probs(gold, ["negative", "positive"]), ["negative", "positive"], student,
                      configs(tiny_encoder, max_minutes=0)[1], tmp_path / "again")


def test_a_time_limit_names_a_student_of_its_own_and_none_keeps_earlier_names():
    from distill import artifacts
    from distill.config import load_config

    plain, limited = load_config([]), load_config(["train.max_minutes=10"])
    assert "max_minutes" not in artifacts.student_identity(plain)["train"]
    assert artifacts.student_dir(plain) != artifacts.student_dir(limited)
