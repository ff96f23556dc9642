"""`load_classifier(folder)`: open whatever a student folder holds, behind one interface
(`predict_proba(texts, batch_size) -> float32 [N, K]`): a fine-tuned transformers student, an embedding +
logistic-regression student, or its ONNX / int8 ONNX export."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DistillError
from .folder import StudentKind, kind_of, reading

VARIANTS = ("torch", "onnx", "onnx-int8")


def load_classifier(folder, device: str = "auto", variant: str = "torch"):
    """The classifier stored in `folder`; `variant` onnx / onnx-int8 loads (exporting once) its ONNX graph.
    A folder whose files are damaged (truncated, overwritten) is a one-line error naming it and the fix."""
    folder = Path(os.path.expanduser(str(folder)))
    if variant not in VARIANTS:
        raise DistillError(f"unknown model variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    with reading(folder):
        return _load(folder, device, variant)


def _load(folder: Path, device: str, variant: str):
    if kind_of(folder) == StudentKind.embedding_lr:
        if variant != "torch":
            raise DistillError(f"{folder} is an embedding + logistic-regression student; only its torch "
                               "variant exists")
        from .embedding_lr import EmbeddingLRClassifier

        return EmbeddingLRClassifier(folder, device=device)
    if variant == "torch":
        from .finetune import StudentClassifier

        return StudentClassifier(folder, device=device)
    from .onnx import ONNXClassifier, export

    return ONNXClassifier(export(folder, quantized=variant == "onnx-int8"), folder)
