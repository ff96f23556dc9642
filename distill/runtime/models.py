"""Model references: a local folder or a Hugging Face hub id, with errors a user can act on."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DistillError

FETCH_SCRIPT = Path(os.environ.get("DISTILL_SHARED", "../shared")) / "bin" / "fetch-models"


def fetch_hint() -> str:
    """How to get the presets' local models: DISTILL_MODELS, and the fetch script where this checkout has it."""
    hint = "set DISTILL_MODELS to the folder that holds the models"
    return f"run {FETCH_SCRIPT} or {hint}" if FETCH_SCRIPT.is_file() else hint


FETCH_HINT = fetch_hint()  # computed once, where the process starts


def looks_local(ref: str) -> bool:
    """A path-like reference (absolute, ~, ./, ../, or more than one '/') is never a hub id."""
    return ref.startswith(("/", "~", ".")) or ref.count("/") > 1


def resolve_model_ref(ref: str, what: str) -> str:
    """Return a path or hub id for from_pretrained; fail clearly when a local path is missing."""
    expanded = os.path.expanduser(ref)
    if Path(expanded).is_dir():
        return expanded
    if looks_local(ref):
        raise DistillError(f"{what}: model folder '{expanded}' does not exist; {FETCH_HINT}, "
                           f"or set {what}=<folder or hub id>")
    return ref


def load_error(ref: str, what: str, err: Exception) -> DistillError:
    """Turn a from_pretrained failure on a hub id into a one-line message."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return DistillError(f"{what}: could not load '{ref}' ({first}); check the hub id and your network, "
                        f"or point {what} at a local folder ({FETCH_HINT})")


def load_model(ref: str, what: str, model_class, device, dtype):
    """Tokenizer and eval-mode `model_class` on `device`, weights loaded straight in `dtype` (one
    half-size copy on a GPU, no per-op casts); a bad reference becomes a one-line DistillError."""
    from transformers import AutoTokenizer

    path = resolve_model_ref(ref, what)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = model_class.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as e:
        raise load_error(ref, what, e) from e
    return tokenizer, model.to(device).eval()
