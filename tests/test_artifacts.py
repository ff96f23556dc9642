"""Artifact paths are content keys: the same settings give the same folders from one version to the next.

The keys below were computed by the code before the layout change (commit 3b8b91e's modules, moved). A
change that alters them makes every user's cached labels and trained students unreachable, so it must be
deliberate. Data paths point nowhere (`/data`): the fingerprint then records the path as missing, and the
key depends on the settings alone, not on this machine's files.
"""
from __future__ import annotations

import pytest

from distill import artifacts
from distill.config import load_config

FIXED = ["paths.data=/data", "paths.models=/models", "paths.outputs=/out"]


@pytest.mark.parametrize("overrides,labels,student", [
    ([], "/out/labels/sst2/deberta-v3-nli-pool-5ef319457a/labels.parquet",
     "/out/students/sst2/deberta-v3-nli-minilm-soft-e431b452e2"),
    (["teacher=mpnet", "data=ag_news"], "/out/labels/ag_news/mpnet-pool-89d0506b5b/labels.parquet",
     "/out/students/ag_news/mpnet-minilm-soft-efcdbb8e25"),
    (["student=minilm-lr"], "/out/labels/sst2/deberta-v3-nli-pool-5ef319457a/labels.parquet",
     "/out/students/sst2/deberta-v3-nli-minilm-lr-soft-ba15526ce4"),
    (["weak=sst2"], "/out/labels/sst2/deberta-v3-nli-pool-5ef319457a/labels.parquet",
     "/out/students/sst2/weak-sst2-minilm-soft-7c21c50661"),
    (["teacher=assistant", "teacher.model=/nonexistent"], "/out/labels/sst2/assistant-pool-bd565d35e7/labels.parquet",
     "/out/students/sst2/assistant-minilm-soft-7135e26f91"),
])
def test_default_label_and_student_paths_are_unchanged(overrides, labels, student):
    cfg = load_config(overrides + FIXED)
    assert str(artifacts.labels_file(cfg)) == labels
    assert str(artifacts.student_dir(cfg)) == student


def test_every_teacher_setting_is_declared_as_changing_the_labels_or_not():
    """A new teacher.* setting must be put in a kind's LABEL_KEYS (or EXPLICIT_KEYS, or SPEED_KEYS), or
    the label cache would silently ignore it."""
    from dataclasses import fields

    from distill.config import TeacherConfig
    from distill.teachers import Teacher, identity_keys

    keys, explicit = identity_keys()
    assert {f.name for f in fields(TeacherConfig)} == keys | explicit | set(Teacher.SPEED_KEYS)
    assert not keys & set(Teacher.SPEED_KEYS) and not explicit & keys


def test_a_teacher_setting_that_changes_labels_changes_the_key():
    base = load_config(FIXED)
    for override in ["teacher.template='It is {}.'", "teacher.max_length=128", "teacher.dtype=float32",
                     "teacher.multi_label=true"]:
        assert artifacts.labels_file(load_config(FIXED + [override])) != artifacts.labels_file(base), override
    for override in ["teacher.batch_size=8", "teacher.device=cpu", "teacher.name=deberta-v3-nli"]:
        assert artifacts.labels_file(load_config(FIXED + [override])) == artifacts.labels_file(base), override
