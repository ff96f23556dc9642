"""Artifact paths are content keys: the same settings give the same folders from one version to the next.

The keys below were computed by the code before the layout change (commit 3b8b91e). A change that alters
them makes every user's cached labels and trained students unreachable, so it must be deliberate. Data
paths point nowhere (`/data`): the fingerprint then records the path as missing, and the key depends on
the settings alone, not on this machine's files. The models' folders exist, as on a machine that labelled.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from distill import artifacts
from distill.config import load_config

MODELS = Path(tempfile.gettempdir()) / "distill-pinned-models"  # a fixed path: it is part of the keys
FIXED = ["paths.data=/data", f"paths.models={MODELS}", "paths.outputs=/out"]


@pytest.fixture(autouse=True)
def local_models():
    """The presets' local model folders exist (empty): the presets then name them, not their Hub ids."""
    for name in ("deberta-v3-nli", "all-MiniLM-L6-v2", "all-mpnet-base-v2"):
        (MODELS / name).mkdir(parents=True, exist_ok=True)


# The default student and its training until 2026-12-06 (MiniLM, 3 epochs, early stopping), now named on the command
# line: the same settings, so the same folders as before the default changed
MINILM = ["student=minilm", "train.epochs=3", "train.early_stopping_patience=3"]


@pytest.mark.parametrize("overrides,labels,student", [
    (MINILM, "/out/labels/sst2/deberta-v3-nli-pool-e851252a77/labels.parquet",
     "/out/students/sst2/deberta-v3-nli-minilm-soft-681f210773"),
    (MINILM + ["teacher=mpnet", "data=ag_news"], "/out/labels/ag_news/mpnet-pool-790a6c00e4/labels.parquet",
     "/out/students/ag_news/mpnet-minilm-soft-7a3276f267"),
    (MINILM + ["student=minilm-lr"], "/out/labels/sst2/deberta-v3-nli-pool-e851252a77/labels.parquet",
     "/out/students/sst2/deberta-v3-nli-minilm-lr-soft-eba6a68f3c"),
    (MINILM + ["weak=sst2"], "/out/labels/sst2/deberta-v3-nli-pool-e851252a77/labels.parquet",
     "/out/students/sst2/weak-sst2-minilm-soft-20cdb0da62"),
    (MINILM + ["teacher=assistant", "teacher.model=/nonexistent"],
     "/out/labels/sst2/assistant-pool-bd565d35e7/labels.parquet", "/out/students/sst2/assistant-minilm-soft-77a2cf5aca"),
    (MINILM[1:] + ["student=deberta-nli", "teacher=minilm-embed"],
     "/out/labels/sst2/minilm-embed-pool-96b15976c0/labels.parquet",
     "/out/students/sst2/minilm-embed-deberta-nli-soft-0fed0a676e"),
    # the default since 2026-12-06 (the teacher's backbone, 6 layers, 6 epochs): the labels are the same
    ([], "/out/labels/sst2/deberta-v3-nli-pool-e851252a77/labels.parquet",
     "/out/students/sst2/deberta-v3-nli-deberta-nli-6l-soft-32bb85fb44"),
])
def test_default_label_and_student_paths_are_unchanged(overrides, labels, student):
    cfg = load_config(overrides + FIXED)
    assert str(artifacts.labels_file(cfg)) == labels
    assert str(artifacts.student_dir(cfg)) == student


def test_every_teacher_setting_is_declared_as_changing_the_labels_or_not():
    """A new teacher.* setting must be put in a kind's LABEL_KEYS (or EXPLICIT_KEYS, SPEED_KEYS or CHOICE_KEYS),
    or the label cache would silently ignore it."""
    from dataclasses import fields

    from distill.config import TeacherConfig
    from distill.teachers import Teacher, identity_keys

    keys, explicit = identity_keys()
    assert {f.name for f in fields(TeacherConfig)} == keys | explicit | set(Teacher.SPEED_KEYS) | set(Teacher.CHOICE_KEYS)
    assert not keys & set(Teacher.SPEED_KEYS) and not explicit & keys and not keys & set(Teacher.CHOICE_KEYS)


def test_a_teacher_setting_that_changes_labels_changes_the_key():
    base = load_config(FIXED)
    for override in ["teacher.template='It is {}.'", "teacher.max_length=128", "teacher.dtype=float32",
                     "teacher.multi_label=true"]:
        assert artifacts.labels_file(load_config(FIXED + [override])) != artifacts.labels_file(base), override
    for override in ["teacher.batch_size=8", "teacher.device=cpu", "teacher.name=deberta-v3-nli"]:
        assert artifacts.labels_file(load_config(FIXED + [override])) == artifacts.labels_file(base), override
