"""NLI zero-shot teacher on an ONNX graph run by onnxruntime (e.g. an int8 dynamically quantized export).

Everything but the model call is NLITeacher's: hypotheses, pair encoding, length-sorted batches, scores.
Only loading, padding and the forward pass differ. A graph exported with a fixed sequence length
(the shipped DeBERTa-v3 int8 model takes exactly 160 tokens) gets every batch padded to that length,
and teacher.max_length is capped to it, so a longer pair is truncated rather than rejected by the graph.

A dynamically quantized graph (DynamicQuantizeLinear) computes its activation scales over the whole
input tensor, so a pair's scores would depend on which pairs share its batch: on the shipped int8 model,
up to 0.18 in probability between batch sizes 1, 8 and 64. Such a graph is run one pair at a time
(and, when its length is dynamic, without padding), which makes the labels independent of batch size
and order, as the artifact keys assume (batch size only changes the speed). The pairs of a batch then
run side by side, each single-threaded, on as many threads as torch uses (one per physical core, or
OMP_NUM_THREADS): on 2 cores, 4.4-4.8 SST-2 texts/s, against 3.3-3.7 for whole batches and 2.0-2.5 for
one pair at a time on onnxruntime's default threads. Other graphs run on as many threads as torch uses,
so `label.workers` processes split the cores instead of each taking all of them.

The folder must hold config.json next to the tokenizer: the graph carries no label names, and the
entailment output is found from config.label2id, never assumed.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer

from ..errors import DistillError, require
from ..runtime.models import FETCH_HINT
from .nli import NLITeacher

log = logging.getLogger(__name__)


class ONNXNLITeacher(NLITeacher):
    """NLITeacher whose forward pass is an onnxruntime InferenceSession on `<model>/model.onnx` (or a .onnx file)."""

    compilable = False

    def _load(self):
        onnx, ort = require("onnx", "teacher.kind=onnx", "onnx", "onnxruntime")
        model_file, folder = onnx_paths(self.cfg.model)
        if not (folder / "config.json").is_file():
            raise DistillError(
                f"teacher.model: {folder} has no config.json; an ONNX teacher reads the output names "
                f"(label2id) from it. Copy the config.json of the same model's transformers folder next to "
                f"{model_file.name} (for the local deberta-v3-nli-onnx copy: deberta-v3-nli/config.json, a folder "
                f"that also holds the same model.onnx and can be used as teacher.model as it is)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            config = AutoConfig.from_pretrained(folder)
        except (OSError, ValueError) as e:
            raise DistillError(f"teacher.model: could not load the tokenizer or config.json in {folder} "
                               f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from e

        self.model_file = model_file
        graph = onnx.load(str(model_file), load_external_data=False).graph
        self.row_by_row = any(node.op_type == "DynamicQuantizeLinear" for node in graph.node)
        self.session = self._session(ort, model_file)
        self.fixed_length = self._check_inputs(tokenizer)
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = "logits" if "logits" in outputs else outputs[0]
        if self.fixed_length:
            # NLITeacher caps max_length by the tokenizer's limit, so the pairs are cut to what the graph takes.
            tokenizer.model_max_length = min(tokenizer.model_max_length, self.fixed_length)
        return tokenizer, config

    def _session(self, ort, model_file: Path):
        """An InferenceSession on CUDA when teacher.device is cuda and onnxruntime has that provider, else CPU."""
        providers, options = ["CPUExecutionProvider"], ort.SessionOptions()
        self.workers = 1
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device.index or 0}))
        else:
            if self.device.type != "cpu":
                log.warning("teacher %s: onnxruntime has no provider for %s here; running on CPU", self.name,
                            self.device)
            # torch's thread budget (a label.workers process has set it to its share of the cores); single
            # pairs are too small to split over threads, so those run several at once instead.
            options.intra_op_num_threads = 1 if self.row_by_row else torch.get_num_threads()
            if self.row_by_row:
                self.workers = torch.get_num_threads()
        try:
            return ort.InferenceSession(str(model_file), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable or invalid graphs
            raise DistillError(f"teacher.model: onnxruntime could not load {model_file} ({e})") from e

    def _check_inputs(self, tokenizer) -> int | None:
        """The graph's fixed sequence length (None: dynamic), after checking the tokenizer can feed every input."""
        self.graph_inputs = [i.name for i in self.session.get_inputs()]
        feedable = set(tokenizer.model_input_names) | {"token_type_ids"}
        unknown = [name for name in self.graph_inputs if name not in feedable]
        if unknown:
            raise DistillError(f"teacher.model: {self.model_file} takes inputs {unknown} that the tokenizer does not "
                               f"produce (it gives {list(tokenizer.model_input_names)}); export an NLI "
                               f"sequence-classification graph taking input_ids and attention_mask")
        shape = self.session.get_inputs()[0].shape
        if isinstance(shape[0], int):
            raise DistillError(f"teacher.model: {self.model_file} has a fixed batch size of {shape[0]}; "
                               f"export it with a dynamic batch axis")
        return shape[1] if len(shape) > 1 and isinstance(shape[1], int) else None

    def _pad(self, features: dict):
        """Pad to the graph's fixed length when it has one, else to the batch's longest pair; numpy arrays."""
        if self.fixed_length:
            return self.tokenizer.pad(features, padding="max_length", max_length=self.fixed_length,
                                      return_tensors="np")
        return self.tokenizer.pad(features, return_tensors="np")

    def _forward(self, batch) -> np.ndarray:
        ids = np.asarray(batch["input_ids"], dtype=np.int64)
        # Feed exactly the inputs the graph declares; a graph may take token_type_ids the tokenizer omits.
        feed = {name: np.asarray(batch[name], dtype=np.int64) if name in batch else np.zeros_like(ids)
                for name in self.graph_inputs}
        if not self.row_by_row:
            return self._run(feed)
        # One pair at a time, and without the padding its batch gave it: padded positions are computed
        # too and would enter the quantization scales. A fixed-length graph pads every pair alike.
        mask = np.asarray(batch["attention_mask"], dtype=bool)
        rows = [{k: v[i:i + 1] if self.fixed_length else v[i:i + 1, mask[i]] for k, v in feed.items()}
                for i in range(len(ids))]
        with ThreadPoolExecutor(self.workers) as pool:  # onnxruntime releases the GIL while it runs
            return np.concatenate(list(pool.map(self._run, rows)))

    def _run(self, feed: dict) -> np.ndarray:
        return np.asarray(self.session.run([self.output_name], feed)[0], dtype=np.float32)

    def describe(self) -> dict:
        info = super().describe()
        # The graph fixes the precision (e.g. int8 weights), so teacher.dtype means nothing here.
        info.pop("dtype", None)
        info.update(kind="onnx", onnx_file=str(self.model_file), providers=self.session.get_providers(),
                    sequence_length=self.fixed_length or "dynamic", row_by_row=self.row_by_row)
        return info


def onnx_paths(ref: str) -> tuple[Path, Path]:
    """(the .onnx file, the folder with its tokenizer and config.json) for a folder or a .onnx file."""
    path = Path(os.path.expanduser(ref))
    if path.suffix == ".onnx":
        if not path.is_file():
            raise DistillError(f"teacher.model: ONNX file '{path}' does not exist; {FETCH_HINT}")
        return path, path.parent
    if not path.is_dir():
        raise DistillError(f"teacher.model: ONNX model folder '{path}' does not exist (teacher.kind=onnx needs a "
                           f"local folder holding model.onnx, or a .onnx file); {FETCH_HINT}")
    if not (path / "model.onnx").is_file():
        found = sorted(p.name for p in path.glob("*.onnx"))
        hint = f"point teacher.model at one of {found}" if found else "export the model to ONNX first"
        raise DistillError(f"teacher.model: {path} has no model.onnx; {hint}")
    return path / "model.onnx", path
