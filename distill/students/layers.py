"""Shrink a student before fine-tuning: keep the encoder's first N transformer layers, drop the rest.

Dropping the top layers of a pretrained encoder and fine-tuning what is left is the cheapest way to a
faster student (Sajjad et al., "On the effect of dropping layers of pre-trained transformer models",
2023: top-layer dropping keeps most of the accuracy). The time of a forward pass is nearly proportional
to the number of layers. The model's config is updated, so `save_pretrained` writes a model that loads
as an ordinary N-layer model of the same architecture.
"""
from __future__ import annotations

import logging

import torch

from ..errors import DistillError

log = logging.getLogger(__name__)


def layer_stack(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The ModuleList holding the encoder's `config.num_hidden_layers` layers (BERT, DeBERTa, ELECTRA,
    MPNet, DistilBERT, RoBERTa... all keep them in one such list)."""
    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layers", None)
    stacks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n]
    if not n or not stacks:
        raise DistillError(f"student.layers: cannot find the transformer layers of {type(model).__name__}; "
                           f"leave student.layers unset for this model")
    return stacks[0]


def keep_first_layers(model: torch.nn.Module, layers: int | None) -> torch.nn.Module:
    """`model` with only its first `layers` transformer layers (in place); None, or as many as it has or more, keeps
    them all."""
    if layers is None:
        return model
    stack = layer_stack(model)
    total = len(stack)
    if layers < 1:
        raise DistillError(f"student.layers={layers}: keep at least 1 of the student's {total} layers "
                           f"(or leave it unset for all)")
    if layers >= total:
        # "at most N": the default student cuts its encoder to 6 layers, and `student.model=` may name a smaller one
        if layers > total:
            log.warning("student.layers=%d: the student has only %d layers; keeping them all", layers, total)
        return model
    del stack[layers:]
    for key in ("num_hidden_layers", "n_layers"):  # DistilBERT calls it n_layers
        if hasattr(model.config, key):
            setattr(model.config, key, layers)
    return model
