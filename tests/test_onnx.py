"""ONNX export of students: the compact DeBERTa attention in the graph, per-channel int8, stale exports redone."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import build_tiny_bert, build_tiny_deberta

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from distill.runtime import cpuinfo, fast_deberta  # noqa: E402
from distill.students.onnx import FP32, INT8, RECIPE, RECIPE_FILE, ONNXClassifier, export, recipe  # noqa: E402

LABELS = {0: "negative", 1: "positive"}
# lengths the export never traced: one word up to a sentence longer than any check text
TEXTS = ["fun", "the movie was great", "i think this plot is very good , really , and the actors are fine too",
         "bad", "what a boring story , i hate it . the team and the game were not fun at all , so why watch ?"]


def torch_probs(folder, texts):
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return torch.softmax(model(**enc).logits, -1).numpy()


@pytest.mark.parametrize("buckets,path,gone", [
    (256, "skewed_attention", {"Tile", "GatherElements"}),  # exact positions up to max_length: no gather
    (8, "compact_bias", {"Tile"}),  # log buckets from length 6 on: the compact gather
])
def test_a_deberta_student_exports_with_distills_attention_and_matches_torch_at_every_length(
        tmp_path, monkeypatch, buckets, path, gone):
    build_tiny_deberta(tmp_path, LABELS, position_buckets=buckets)
    calls = []
    real = getattr(fast_deberta, path)
    monkeypatch.setattr(fast_deberta, path, lambda *a: calls.append(1) or real(*a))
    graph = export(tmp_path)
    assert calls  # that path was traced into the graph
    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    # transformers' own path copies the position table once per sequence (Tile)
    assert not ops & gone, ops & gone
    want = torch_probs(tmp_path, TEXTS)
    for batch in (TEXTS, TEXTS[:1], TEXTS[2:3], TEXTS[4:]):  # each batch padded to its own length
        got = ONNXClassifier(graph, tmp_path).predict_proba(batch, batch_size=len(batch))
        idx = [TEXTS.index(t) for t in batch]
        assert np.abs(got - want[idx]).max() < 1e-4
    assert json.loads((graph.parent / RECIPE_FILE).read_text()) == RECIPE  # no int8 graph yet


def int8_weights(graph) -> list[np.ndarray]:
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    names = {n.input[1] for n in model.graph.node if n.op_type == "MatMulInteger"}
    return [numpy_helper.to_array(t) for t in model.graph.initializer if t.name in names]


@pytest.mark.parametrize("saturates,limit", [(True, 64), (False, 127)])
def test_int8_weights_take_7_bits_where_int8_products_saturate(tmp_path, monkeypatch, saturates, limit):
    """x86 without VNNI sums u8 x s8 pairs in 16 bits: 7-bit weights keep the sums in range there."""
    monkeypatch.setattr(cpuinfo, "int8_saturates", lambda: saturates)
    build_tiny_bert(tmp_path, LABELS, hidden_size=32)
    weights = int8_weights(export(tmp_path, quantized=True))
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == limit
    assert json.loads((tmp_path / "onnx" / RECIPE_FILE).read_text())["reduce_range"] is saturates


def test_an_int8_graph_made_for_another_cpu_kind_is_quantized_again(tmp_path, monkeypatch, caplog):
    build_tiny_bert(tmp_path, LABELS)
    monkeypatch.setattr(cpuinfo, "int8_saturates", lambda: False)
    graph = export(tmp_path, quantized=True)
    fp32_made = (graph.parent / FP32).stat().st_mtime_ns
    monkeypatch.setattr(cpuinfo, "int8_saturates", lambda: True)  # the folder moved to a CPU without VNNI
    with caplog.at_level("INFO", logger="distill.students.onnx"):
        again = export(tmp_path, quantized=True)
    assert "quantized for another CPU" in caplog.text
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in int8_weights(again)) == 64
    assert (graph.parent / FP32).stat().st_mtime_ns == fp32_made  # the fp32 graph is not exported again
    assert json.loads((graph.parent / RECIPE_FILE).read_text()) == recipe()


def test_int8_weights_have_one_scale_per_output_channel(tmp_path):
    build_tiny_bert(tmp_path, LABELS, hidden_size=32)
    graph = onnx.load(str(export(tmp_path, quantized=True)))
    assert export(tmp_path, quantized=True).name == INT8
    weights = [n.input[1].removesuffix("_quantized") for n in graph.graph.node if n.op_type == "MatMulInteger"]
    scales = {t.name: list(t.dims) for t in graph.graph.initializer if t.name.endswith("_scale")}
    assert len(weights) == 14  # q, k, v, attention out, FFN in and out in both layers, pooler, classifier
    assert all(len(scales[f"{w}_scale"]) == 1 and scales[f"{w}_scale"][0] > 1 for w in weights), scales
    fp32 = ONNXClassifier(export(tmp_path), tmp_path).predict_proba(TEXTS)
    int8 = ONNXClassifier(export(tmp_path, quantized=True), tmp_path).predict_proba(TEXTS)
    assert np.abs(int8 - fp32).max() < 0.05


def test_an_export_by_an_older_recipe_is_made_again(tmp_path, caplog):
    build_tiny_bert(tmp_path, LABELS)
    graph = export(tmp_path, quantized=True)
    fresh = graph.read_bytes()
    (graph.parent / RECIPE_FILE).unlink()  # as an export made before recipes were recorded
    graph.write_bytes(b"stale")
    with caplog.at_level("INFO", logger="distill.students.onnx"):
        again = export(tmp_path, quantized=True)
    assert "older recipe" in caplog.text
    assert again.read_bytes() == fresh
    assert json.loads((graph.parent / RECIPE_FILE).read_text()) == recipe()
    assert export(tmp_path, quantized=True).read_bytes() == fresh  # current: reused, not redone
