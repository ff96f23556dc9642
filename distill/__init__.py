"""distill: a zero-shot teacher labels your texts, a small fast student learns from its labels.

The command line is `distill` (python -m distill); from Python:

    import distill
    labels = distill.label(texts, ["negative", "positive"])
    student = distill.train(labels)
    student.predict(["a new text"])

`load_config(overrides)` and `run_stage(cfg)` run any stage as the command line does.
"""
from __future__ import annotations

from .api import Student, estimate, label, load, review_queue, train
from .config import load_config
from .errors import DistillError


def run_stage(cfg):
    """Run the stage `cfg.stage` names (label, train, eval, all, ...): what `distill stage=...` does."""
    from .stages import run_stage as run

    return run(cfg)


__all__ = ["label", "train", "load", "review_queue", "estimate", "Student", "load_config", "run_stage",
           "DistillError"]
