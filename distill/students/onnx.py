"""Export a fine-tuned student to ONNX and to dynamic int8, and run those with onnxruntime.

    <student>/onnx/model.onnx         fp32 graph (dynamic batch and sequence axes), logits output
    <student>/onnx/model.int8.onnx    the same, weights quantized to int8 (onnxruntime dynamic quantization,
                                      one scale per output channel)
    <student>/onnx/export.json        the recipe both were made with

Exports are made once and reused while their recipe is current; an export made by an older recipe is
made again. Attention is exported in its eager form (no SDPA fast paths that tracing would freeze to one
input shape); a DeBERTa student exports with distill's compact relative attention (fast_deberta), which
cuts the int8 graph's time by about 40%. `check_export` compares the graph with the torch model on
batches of several shapes before it is kept.

Per-channel weight scales matter: with one scale per tensor, the int8 DeBERTa-v3 SST-2 student lost 18
points of accuracy (0.883 -> 0.706); with one per output channel it keeps it (0.885), and the MiniLM
students agree with their fp32 selves on 98% of texts instead of 96%.

On x86 CPUs without VNNI, onnxruntime's int8 products (u8 activations x s8 weights) add pairs of
products in 16 bits, which saturate; there the weights are quantized to 7 bits (`reduce_range`), which
keeps those sums in range. Which one a graph was made with is part of its recipe, chosen by the CPU
that exports it, so a student folder moved to a CPU of the other kind gets its int8 graph made again
(see docs/benchmarks.md, "int8 students on CPUs without VNNI", for what each costs).
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..config import StudentKind
from ..errors import DistillError, require
from ..runtime import cpuinfo, fast_deberta
from ..runtime.device import STUDENT_CPU_MAX_TOKENS
from .batched import TokenClassifier
from .folder import folder_meta, folder_size_mb, input_max_length, is_multi_label, kind_of, probabilities

log = logging.getLogger(__name__)
ONNX_DIR = "onnx"
FP32, INT8, RECIPE_FILE = "model.onnx", "model.int8.onnx", "export.json"
# bump "version" whenever a change to the fp32 export makes old graphs stale
RECIPE = {"version": 3, "opset": 17, "deberta_attention": "skewed up to max_length, else compact"}
CHECK_TEXTS = ["a", "the movie was great", "a long and winding sentence that goes on for quite a few words, "
               "with commas, to exercise longer sequences than the rest", "bad"]


def _require_onnx():
    require("onnx", "ONNX export", "onnx", "onnxruntime")


def int8_recipe() -> dict:
    """How this machine quantizes: 7-bit weights where int8 products saturate (x86 without VNNI)."""
    return {"int8": "dynamic, per-channel QInt8 weights", "reduce_range": cpuinfo.int8_saturates()}


def recipe() -> dict:
    """The recipe an export made here records: the fp32 graph's, and the int8 graph's on this CPU."""
    return {**RECIPE, **int8_recipe()}


def available_variants(folder: Path, wanted: list[str]) -> list[str]:
    """The variants of a student folder that can be measured: ONNX ones only for fine-tuned students, and
    only when onnxruntime is installed (a warning names what is left out)."""
    wanted = [str(v) for v in wanted] or ["torch"]
    if kind_of(folder) != StudentKind.finetune:
        return ["torch"]  # embedding + logistic regression: no export
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        dropped = [v for v in wanted if v != "torch"]
        if dropped:
            log.warning("onnxruntime is not installed, so %s are not measured (pip install 'distill[onnx]')",
                        ", ".join(dropped))
        return [v for v in wanted if v == "torch"] or ["torch"]
    return wanted


def export(folder, quantized: bool = False) -> Path:
    """Path of the student's fp32 (or int8) ONNX graph, exporting it first if it is not there yet."""
    _require_onnx()
    folder = Path(folder)
    onnx_dir = folder / ONNX_DIR
    fp32, int8 = onnx_dir / FP32, onnx_dir / INT8
    _drop_stale(onnx_dir)
    if not fp32.is_file():
        _export_fp32(folder, fp32)
    if quantized and not int8.is_file():
        _quantize(fp32, int8, reduce_range=int8_recipe()["reduce_range"])
    _write_recipe(onnx_dir)
    return int8 if quantized else fp32


def _read_recipe(onnx_dir: Path) -> dict | None:
    try:
        return json.loads((onnx_dir / RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_recipe(onnx_dir: Path) -> None:
    """export.json: the fp32 recipe, and the int8 one once an int8 graph is there."""
    have = recipe() if (onnx_dir / INT8).is_file() else dict(RECIPE)
    if _read_recipe(onnx_dir) != have:
        (onnx_dir / RECIPE_FILE).write_text(json.dumps(have, indent=2) + "\n")


def _drop_stale(onnx_dir: Path) -> None:
    """Remove graphs made by another export recipe (an older distill), so they are made again; an int8
    graph quantized for the other kind of CPU (VNNI or not) is quantized again, the fp32 one kept."""
    fp32, int8 = onnx_dir / FP32, onnx_dir / INT8
    if not fp32.is_file() and not int8.is_file():
        return
    found = _read_recipe(onnx_dir) or {}
    if {k: found.get(k) for k in RECIPE} != RECIPE:
        log.info("%s was exported by an older recipe (%s); exporting again", onnx_dir, found or "unrecorded")
        fp32.unlink(missing_ok=True)
        int8.unlink(missing_ok=True)
    elif int8.is_file() and _int8_of(found) != int8_recipe():
        log.info("%s holds an int8 graph quantized for another CPU (%s; this one: %s); quantizing again",
                 onnx_dir, _int8_of(found), int8_recipe())
        int8.unlink()


def _int8_of(found: dict) -> dict:
    # graphs recorded before reduce_range was were all quantized with 8-bit weights
    return {"int8": found.get("int8"), "reduce_range": found.get("reduce_range", False)}


def _export_fp32(folder: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if kind_of(folder) != StudentKind.finetune:
        raise DistillError(f"{folder} holds no fine-tuned transformers student to export to ONNX")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    # DeBERTa: distill's relative attention goes into the graph too, skewed when every length up to the
    # classifier's max_length is exact (fast_deberta.skew_limit), else the compact gather
    fast_deberta.install(model, max_length=input_max_length(folder, tokenizer, model.config))
    # in the forward's own order, which the exporter follows when it names the graph's inputs
    takes = inspect.signature(model.forward).parameters
    names = [n for n in takes if n in tokenizer.model_input_names]
    sample = tokenizer(CHECK_TEXTS[:2], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.onnx")  # two evals exporting at once: one name each
    log.info("exporting %s to ONNX -> %s", folder.name, out)
    with torch.inference_mode():
        torch.onnx.export(model, (), str(tmp), kwargs={n: sample[n] for n in names}, input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    check_export(tmp, folder, model, tokenizer)
    os.replace(tmp, out)


def _quantize(fp32: Path, out: Path, reduce_range: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.onnx")  # two evals exporting at once: one name each
    log.info("quantizing %s to dynamic int8 (%s-bit weights) -> %s", fp32, 7 if reduce_range else 8, out)
    # the quantizer logs a line a tensor, and a warning pointing to an image-classification example, on the root logger
    with quiet_root_logger(logging.ERROR):
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=reduce_range)
    os.replace(tmp, out)


@contextlib.contextmanager
def quiet_root_logger(level: int = logging.WARNING):
    root = logging.getLogger()
    before = root.level
    root.setLevel(max(before, level))
    try:
        yield
    finally:
        root.setLevel(before)


def check_export(path: Path, folder: Path, model, tokenizer, atol: float = 1e-3) -> None:
    """The graph must give the torch model's logits on batches of 1 and several texts of mixed lengths."""
    import torch

    session = ONNXClassifier(path, folder)
    for texts in (CHECK_TEXTS[:1], CHECK_TEXTS, CHECK_TEXTS[2:3]):
        enc = tokenizer(texts, padding=True, truncation=True, max_length=session.max_length, return_tensors="pt")
        with torch.inference_mode():
            want = probabilities(model(**enc).logits.float().numpy(), is_multi_label(model.config))
        got = session.predict_proba(texts, batch_size=len(texts))
        if not np.allclose(got, want, atol=atol):
            raise DistillError(f"the ONNX export of {folder} disagrees with the torch model (max |diff| "
                               f"{np.abs(got - want).max():.2e}); it was not kept")


class ONNXClassifier(TokenClassifier):
    """An exported student graph on onnxruntime (CPU), with the student folder's tokenizer and labels."""

    max_tokens = STUDENT_CPU_MAX_TOKENS
    tensors = "np"

    def __init__(self, path, folder, threads: int | None = None):
        import onnxruntime as ort
        from transformers import AutoConfig, AutoTokenizer

        self.path, self.folder = Path(path), Path(folder)
        meta = folder_meta(self.folder)
        config = AutoConfig.from_pretrained(self.folder)
        self.labels = [config.id2label[i] for i in range(len(config.id2label))]
        self.multi_label = is_multi_label(config)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.max_length = input_max_length(self.folder, self.tokenizer, config)
        variant = "onnx-int8" if self.path.name == INT8 else "onnx"
        self.name = f"{meta.get('student', {}).get('name') or self.folder.name} {variant}"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def _probs(self, batch) -> np.ndarray:
        logits = self.session.run(["logits"], {n: batch[n].astype(np.int64) for n in self.inputs})[0]
        return probabilities(logits, self.multi_label)

    def num_parameters(self) -> int:
        import onnx

        model = onnx.load(str(self.path), load_external_data=False)
        return int(sum(np.prod(t.dims) for t in model.graph.initializer))

    def size_mb(self) -> float:
        return folder_size_mb(self.path.parent, [self.path.name])

    def describe(self) -> dict:
        return {"name": self.name, "model": str(self.path), "labels": self.labels,
                "num_parameters": self.num_parameters(), "device": "cpu (onnxruntime)", "max_length": self.max_length}
