"""Integration tier: the real models from ../shared/bin/fetch-models on real data, end to end on a slice.

Skipped, with the reason, when ../shared or the models are absent. About a minute on 2 CPU cores.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from distill import artifacts
from distill.config import load_config
from distill.stages import run_stage

from conftest import SHARED, require_model, require_shared

pytestmark = pytest.mark.integration


def test_real_end_to_end_on_a_slice(tmp_path):
    require_shared("data", "sst2", "train.tsv")
    teacher = require_model("deberta-v3-nli")  # and the default student: its backbone's first 6 layers
    cfg = load_config([
        "data=sst2", f"paths.data={SHARED / 'data'}", f"paths.outputs={tmp_path}",
        f"teacher.model={teacher}", f"student.model={teacher}",
        "data.pool_size=96", "data.heldout_size=64", "train.epochs=2", "train.batch_size=16",
        "eval.batch_sizes=[1,32]", "eval.bench_texts=32", "eval.warmup_batches=1",
    ])
    result = run_stage(cfg)
    labels = pd.read_parquet(result["label"]["labels_path"])
    assert len(labels) == 96 and set(labels["label"]) == {"negative", "positive"}
    metrics = json.loads((artifacts.eval_dir(cfg) / "metrics.json").read_text())
    teacher_entry, student_entry, *exports = metrics["models"]  # then the student's ONNX / int8 exports
    assert [e["variant"] for e in exports] == ["onnx", "onnx-int8"]
    # The real teacher is a real zero-shot classifier: far above chance even on 64 sentences.
    assert teacher_entry["accuracy"] >= 0.7, teacher_entry
    assert 0.0 <= student_entry["agreement_with_teacher"] <= 1.0
    # The student is far cheaper than the teacher per text at batch 32.
    assert student_entry["samples_per_s"]["32"] > teacher_entry["samples_per_s"]["32"]
