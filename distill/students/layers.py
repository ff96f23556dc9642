"""Shrink a student before fine-tuning: keep the encoder's first N transformer layers, drop the rest.

Dropping the top layers of a pretrained encoder and fine-tuning what is left is the cheapest way to a
faster student (Sajjad et al., "On the effect of dropping layers of pre-trained transformer models",
2023: top-layer dropping keeps most of the accuracy). The time of a forward pass is nearly proportional
to the number of layers. The model's config is updated, so `save_pretrained` writes a model that loads
as an ordinary N-layer model of the same architecture.
"""
from __future__ import annotations

import torch

from ..errors import DistillError


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
    """`model` with only its first `layers` transformer layers (in place); None keeps them all."""
    if layers is None:
        return model
    stack = layer_stack(model)
    total = len(stack)
    if not 1 <= layers <= total:
        raise DistillError(f"student.layers={layers}: the student has {total} layers, so keep between 1 "
                           f"and {total} (or leave it unset for all)")
    del stack[layers:]
    for key in ("num_hidden_layers", "n_layers"):  # DistilBERT calls it n_layers
        if hasattr(model.config, key):
            setattr(model.config, key, layers)
    return model
