"""What the student learns from (filters, weights, validation split) and the other trainers: txtai's
HFTrainer (hard labels), the embedding + logistic-regression student, and resuming after a crash."""
from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from distill.config import StudentConfig, TrainConfig
from distill.errors import DistillError
from distill.students.load import load_classifier
from distill.students.trainers import train_student
from distill.students.trainset import prepare

from conftest import assert_batch_and_order_invariant
from test_students import sentiment, teacher_probs

LABELS = ["negative", "positive"]


def cfg(**train):
    return OmegaConf.structured(TrainConfig(**{"epochs": 1, "batch_size": 8, "device": "cpu", **train}))


# --- prepare: filters, weights, split -------------------------------------------------------------------

def test_min_confidence_drops_unsure_teacher_labels():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    data, val, stats = prepare(list("abcd"), probs, LABELS, cfg(min_confidence=0.7, val_fraction=0))
    assert data.texts == ["a", "c"] and val is None
    assert stats["n_dropped_low_confidence"] == 2 and stats["n_train"] == 2


def test_class_balance_weights_rare_classes_up_and_keeps_mean_one():
    probs = teacher_probs(["positive"] * 6 + ["negative"] * 2, LABELS)
    data, _, stats = prepare([str(i) for i in range(8)], probs, LABELS, cfg(class_balance=True, val_fraction=0))
    w = data.weights
    assert w.mean() == pytest.approx(1.0)
    # each class carries the same total weight: 2 negatives x 2.0 = 6 positives x 0.667
    assert w[6:].sum() == pytest.approx(w[:6].sum()) and w[6] == pytest.approx(3 * w[0])
    assert stats["weighted"] is True


def test_multi_label_label_balance_weighs_each_labels_positives():
    """Multi-label (train.label_balance, on by default): a label the teacher gives 1 text in 4 has its positives
    weigh 3 (its 3 negatives' worth); one given to every text keeps 1; texts keep weight 1."""
    import torch

    from distill.students.losses import multi_label_cross_entropy

    sets = np.array([[1, 1], [0, 1], [0, 1], [0, 1]])
    data, _, _ = prepare(list("abcd"), sets.astype(np.float32), LABELS, cfg(val_fraction=0, targets="hard"),
                         sets=sets)
    assert data.pos_weight.tolist() == [3.0, 1.0] and data.weights is None
    logits, targets = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    plain = multi_label_cross_entropy(logits, targets)
    weighted = multi_label_cross_entropy(logits, targets, pos_weight=torch.tensor(data.pos_weight))
    assert weighted.item() == pytest.approx(plain.item() * 2)  # (3 ln2 + ln2) / 2 against (ln2 + ln2) / 2
    unbalanced, _, _ = prepare(list("abcd"), sets.astype(np.float32), LABELS,
                               cfg(val_fraction=0, label_balance=False), sets=sets)
    assert unbalanced.pos_weight is None


def test_confidence_weighting_and_a_weight_column_multiply_and_zero_weight_drops():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], dtype=np.float32)
    data, _, stats = prepare(list("abc"), probs, LABELS, cfg(confidence_weighting=True, val_fraction=0),
                             weights=np.array([1.0, 0.0, 2.0]))
    assert data.texts == ["a", "c"] and stats["n_dropped_zero_weight"] == 1
    raw = np.array([0.9 * 1.0, 0.7 * 2.0])
    np.testing.assert_allclose(data.weights, raw / raw.mean(), rtol=1e-6)


def test_no_options_means_no_weights_at_all():
    data, _, stats = prepare(list("abcd"), teacher_probs(["positive", "negative"] * 2, LABELS), LABELS,
                             cfg(val_fraction=0))
    assert data.weights is None and stats["weighted"] is False


def test_validation_split_is_seeded_disjoint_and_teacher_labelled():
    texts = [f"t{i}" for i in range(50)]
    probs = teacher_probs(["positive", "negative"] * 25, LABELS)
    a_train, a_val, _ = prepare(texts, probs, LABELS, cfg(val_fraction=0.2))
    b_train, b_val, _ = prepare(texts, probs, LABELS, cfg(val_fraction=0.2))
    assert len(a_val) == 10 and len(a_train) == 40 and not set(a_val.texts) & set(a_train.texts)
    assert a_val.texts == b_val.texts  # same seed, same split
    assert a_val.texts != prepare(texts, probs, LABELS, cfg(val_fraction=0.2, seed=1))[1].texts
    index = {t: i for i, t in enumerate(texts)}
    np.testing.assert_array_equal(a_val.probs, probs[[index[t] for t in a_val.texts]])


@pytest.mark.parametrize("bad, match", [({"min_confidence": 1.0}, "min_confidence"),
                                        ({"val_fraction": 1.0}, "val_fraction"),
                                        ({"min_confidence": 0.95, "val_fraction": 0}, "leaves no text")])
def test_bad_options_name_the_key(bad, match):
    with pytest.raises(DistillError, match=match):
        prepare(list("ab"), teacher_probs(["positive", "negative"], LABELS), LABELS, cfg(**bad))


def test_a_negative_weight_column_is_refused():
    with pytest.raises(DistillError, match="`weight` column"):
        prepare(list("ab"), teacher_probs(["positive", "negative"], LABELS), LABELS, cfg(val_fraction=0),
                weights=np.array([1.0, -1.0]))


# --- weighted training ------------------------------------------------------------------------------------

def test_zero_weight_texts_do_not_move_the_loss(tiny_encoder, tmp_path):
    """A batch where half the texts weigh 0 gives the loss of the other half alone."""
    import torch

    from distill.students.finetune import build_trainer
    from distill.students.trainset import LabelledTexts

    texts, gold = sentiment(2)  # 4 texts
    probs = teacher_probs(gold, LABELS)
    student = OmegaConf.structured(StudentConfig(name="tiny", model=str(tiny_encoder), max_length=32))
    weights = np.array([1.0, 1.0, 0.0, 0.0])
    trainer = build_trainer(LabelledTexts(texts, probs, weights), None, LABELS, student, cfg(), tmp_path)
    model = trainer.model.eval()
    collate = trainer.data_collator
    both = collate(trainer.train_dataset)
    assert both["weights"].tolist() == weights.tolist()
    first_two = collate(trainer.train_dataset[:2])
    first_two.pop("weights")
    with torch.no_grad():
        assert trainer.compute_loss(model, both).item() == pytest.approx(
            trainer.compute_loss(model, first_two).item(), rel=1e-4)


# --- txtai's HFTrainer ----------------------------------------------------------------------------------

def test_txtai_trainer_trains_on_hard_labels(tiny_encoder, tmp_path):
    pytest.importorskip("txtai", reason="train.trainer=txtai needs txtai: pip install 'distill[txtai]'")
    from transformers import pipeline

    texts, gold = sentiment(10)
    student = OmegaConf.structured(StudentConfig(name="tiny", model=str(tiny_encoder), max_length=32))
    summary = train_student(texts, teacher_probs(gold, LABELS), LABELS, student,
                            cfg(trainer="txtai", targets="hard", epochs=2), tmp_path)
    assert summary["trainer"] == "txtai.HFTrainer" and summary["n_val"] == 2
    meta = json.loads((tmp_path / "distill_train.json").read_text())
    assert meta["train"]["trainer"] == "txtai"
    predictions = pipeline("text-classification", model=str(tmp_path), device="cpu")(texts[:3])
    assert {p["label"] for p in predictions} <= set(LABELS)


@pytest.mark.parametrize("bad, match", [({"targets": "soft"}, "hard labels only"),
                                        ({"targets": "hard", "class_balance": True}, "cannot weight")])
def test_txtai_trainer_refuses_what_it_cannot_do(tiny_encoder, tmp_path, bad, match):
    texts, gold = sentiment(4)
    texts, gold = texts[:5], gold[:5]  # 4 positive, 1 negative: class balancing gives unequal weights
    student = OmegaConf.structured(StudentConfig(name="tiny", model=str(tiny_encoder), max_length=32))
    with pytest.raises(DistillError, match=match):
        train_student(texts, teacher_probs(gold, LABELS), LABELS, student,
                      cfg(trainer="txtai", val_fraction=0, **bad), tmp_path)


# --- embedding + logistic regression ----------------------------------------------------------------------

@pytest.mark.parametrize("targets", ["soft", "hard"])
def test_embedding_lr_student_learns_and_loads_like_any_student(tiny_encoder, tmp_path, targets):
    texts, gold = sentiment(30)
    student = OmegaConf.structured(StudentConfig(name="tiny-lr", kind="embedding_lr", model=str(tiny_encoder),
                                                 max_length=32, lr_c=100.0))
    summary = train_student(texts, teacher_probs(gold, LABELS, confidence=0.9), LABELS, student,
                            cfg(targets=targets), tmp_path)
    assert 0 <= summary["val_agreement"] <= 1 and (tmp_path / "encoder" / "config.json").is_file()
    clf = load_classifier(tmp_path, device="cpu")
    assert clf.labels == LABELS and clf.num_parameters() > 0
    probs = clf.predict_proba(texts)
    assert probs.shape == (60, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    # one word separates the classes; a linear head on frozen mean-pooled states finds it
    assert (probs.argmax(axis=1) == np.array([LABELS.index(g) for g in gold])).mean() >= 0.9
    assert_batch_and_order_invariant(clf.predict_proba, texts[:12])
    with pytest.raises(DistillError, match="only its torch"):
        load_classifier(tmp_path, variant="onnx")


def test_soft_targets_fit_the_soft_cross_entropy():
    """Expanding each text into K rows weighted by p_k is the soft cross-entropy: a text the teacher
    splits 50/50 pulls the head to 0.5."""
    from distill.students.embedding_lr import _fit_rows
    from distill.students.trainset import LabelledTexts

    x = np.eye(3, dtype=np.float32)
    data = LabelledTexts(["a", "b", "c"], np.array([[0.5, 0.5], [1.0, 0.0], [0.2, 0.8]], dtype=np.float32))
    rows, ids, w = _fit_rows(x, data, "soft")
    assert len(rows) == 5  # the zero-probability row is left out
    assert ids.tolist() == [0, 1, 0, 0, 1] and w.tolist() == pytest.approx([0.5, 0.5, 1.0, 0.2, 0.8])


# --- resume -------------------------------------------------------------------------------------------------

def test_training_resumes_from_the_last_checkpoint(tiny_encoder, tmp_path, caplog):
    """A crash after some checkpoints: the rerun continues from the last one instead of starting over."""
    from transformers import TrainerCallback

    import distill.students.finetune as students

    texts, gold = sentiment(20)
    student = OmegaConf.structured(StudentConfig(name="tiny", model=str(tiny_encoder), max_length=32))
    train = cfg(epochs=2, val_fraction=0)

    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= 5:
                raise KeyboardInterrupt("simulated crash")

    original = students.build_trainer

    def crashing(*args, **kwargs):
        trainer = original(*args, **kwargs)
        trainer.add_callback(Crash())
        return trainer

    students.build_trainer = crashing
    try:
        with pytest.raises(KeyboardInterrupt):
            train_student(texts, teacher_probs(gold, LABELS), LABELS, student, train, tmp_path)
    finally:
        students.build_trainer = original
    saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert saved and not (tmp_path / "distill_train.json").exists()
    with caplog.at_level("INFO", logger="distill.students.finetune"):
        summary = train_student(texts, teacher_probs(gold, LABELS), LABELS, student, train, tmp_path)
    assert any("resuming the interrupted training from" in r.message for r in caplog.records)
    assert summary["steps"] == 10  # 40 texts / 8 x 2 epochs: the total, not 10 more
    assert not (tmp_path / "checkpoints").exists()


def test_a_checkpoint_left_half_written_by_a_kill_is_not_resumed_from(tmp_path, caplog):
    """Killed while saving: the newest checkpoint folder has weights but no trainer state. Resuming from it
    failed with a FileNotFoundError (seen in a real run); the finished one before it is used instead."""
    from distill.students.finetune import last_checkpoint

    for step, files in ((28, ["model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"]),
                        (56, ["model.safetensors", "optimizer.pt"]), (7, ["trainer_state.json"])):
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        for name in files:
            (folder / name).write_text("{}")
    with caplog.at_level("WARNING", logger="distill.students.finetune"):
        assert last_checkpoint(tmp_path, cfg()) == str(tmp_path / "checkpoints" / "checkpoint-28")
    assert "checkpoint-56 was not finished" in caplog.text
    assert last_checkpoint(tmp_path, cfg(resume=False)) is None
    for folder in (tmp_path / "checkpoints").iterdir():
        (folder / "trainer_state.json").unlink(missing_ok=True)
    assert last_checkpoint(tmp_path, cfg()) is None
