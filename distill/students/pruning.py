"""Shrink a trained student's feed-forward layers: keep, in every transformer layer, the N hidden units
that matter most to its loss on the teacher's labels and drop the others (structured pruning).

A unit's importance is the first-order Taylor estimate of how much the loss would change without it
(Molchanov et al., "Importance estimation for neural network pruning", CVPR 2019): |sum of weight x
gradient| over the unit's input row, its bias and its output column, summed over batches. Measured on the
fine-tuned student, then fine-tuned again (stage=prune), this keeps far more accuracy than cutting the
pretrained model before its first fine-tuning. The model's config is updated, so `save_pretrained` writes
a model that loads as an ordinary one of the same architecture with a narrower feed-forward block.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DistillError
from .layers import layer_stack
from .losses import soft_cross_entropy

log = logging.getLogger(__name__)
# (unit inputs, unit outputs) of the feed-forward block: BERT / DeBERTa / ELECTRA / MPNet, DistilBERT
FFN_NAMES = (("intermediate.dense", "output.dense"), ("ffn.lin1", "ffn.lin2"))
SIZE_KEYS = ("intermediate_size", "hidden_dim")  # DistilBERT calls it hidden_dim


def ffn_pairs(model: torch.nn.Module) -> list[tuple[torch.nn.Module, str, str]]:
    """(layer, name of the linear into the hidden units, name of the one out of them) for every layer."""
    pairs = []
    for layer in layer_stack(model):
        names = dict(layer.named_modules())
        found = next(((i, o) for i, o in FFN_NAMES if isinstance(names.get(i), torch.nn.Linear)
                      and isinstance(names.get(o), torch.nn.Linear)), None)
        if found is None:
            raise DistillError(f"stage=prune: cannot find the feed-forward block of {type(model).__name__} "
                               f"(looked for {', '.join(' + '.join(p) for p in FFN_NAMES)})")
        pairs.append((layer, *found))
    return pairs


def ffn_importance(model, tokenizer, texts: Sequence[str], probs: np.ndarray, temperature: float = 1.0,
                   max_length: int = 128, batch_size: int = 32) -> list[torch.Tensor]:
    """Per layer, the Taylor importance [units] of each feed-forward unit for the distillation loss."""
    if len(texts) == 0:
        raise DistillError("stage=prune: no texts to measure the units' importance on")
    pairs = ffn_pairs(model)
    modules = [(layer.get_submodule(i), layer.get_submodule(o)) for layer, i, o in pairs]
    scores = [torch.zeros(inp.out_features) for inp, _ in modules]
    model.eval()  # no dropout: the gradient of the model that will be kept
    targets = torch.tensor(np.asarray(probs, dtype=np.float32))
    for start in tqdm(range(0, len(texts), batch_size), desc="prune: unit importance", unit="batch"):
        enc = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt")
        model.zero_grad(set_to_none=True)
        soft_cross_entropy(model(**enc).logits, targets[start:start + batch_size], temperature).backward()
        with torch.no_grad():
            for score, (inp, out) in zip(scores, modules):
                s = (inp.weight * inp.weight.grad).sum(1) + (out.weight * out.weight.grad).sum(0)
                if inp.bias is not None:
                    s += inp.bias * inp.bias.grad
                score += s.abs()
    model.zero_grad(set_to_none=True)
    return scores


def _narrow(linear: torch.nn.Linear, keep: torch.Tensor, dim: int) -> torch.nn.Linear:
    """`linear` with only the output rows (dim 0) or input columns (dim 1) in `keep`."""
    weight = linear.weight.data.index_select(dim, keep).clone()
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None,
                          dtype=weight.dtype, device=weight.device)
    new.weight.data = weight
    if linear.bias is not None:
        new.bias.data = (linear.bias.data.index_select(0, keep) if dim == 0 else linear.bias.data).clone()
    return new


def prune_ffn(model: torch.nn.Module, size: int, scores: list[torch.Tensor]) -> torch.nn.Module:
    """Keep the `size` most important units of every feed-forward block (in place, config updated)."""
    pairs = ffn_pairs(model)
    width = pairs[0][0].get_submodule(pairs[0][1]).out_features
    if not 1 <= size <= width:
        raise DistillError(f"prune.ffn_size={size}: the student's feed-forward layers have {width} units, "
                           f"so keep between 1 and {width}")
    for (layer, inp, out), score in zip(pairs, scores):
        keep = score.topk(size).indices.sort().values
        for name, dim in ((inp, 0), (out, 1)):
            parent, _, attr = name.rpartition(".")
            setattr(layer.get_submodule(parent), attr, _narrow(layer.get_submodule(name), keep, dim))
    for key in SIZE_KEYS:
        if hasattr(model.config, key):
            setattr(model.config, key, size)
    log.info("pruned the feed-forward blocks of %d layers from %d to %d units", len(pairs), width, size)
    return model


def distillation_loss(model, tokenizer, texts: Sequence[str], probs: np.ndarray, temperature: float = 1.0,
                      max_length: int = 128, batch_size: int = 64) -> float:
    """Mean soft cross-entropy of `model` against the teacher's probabilities on `texts` (eval mode)."""
    model.eval()
    targets = torch.tensor(np.asarray(probs, dtype=np.float32))
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            batch = targets[start:start + batch_size]
            total += float(soft_cross_entropy(model(**enc).logits, batch, temperature)) * len(batch)
    return total / max(1, len(texts))


def drop_layers(model: torch.nn.Module, tokenizer, count: int, texts: Sequence[str], probs: np.ndarray,
                temperature: float = 1.0, max_length: int = 128) -> list[int]:
    """Remove `count` whole transformer layers (in place, config updated), one at a time the layer whose
    absence raises the distillation loss on `texts` least (greedy; Sajjad et al. 2023 find that which layers
    a fine-tuned model can spare depends on the model and task, not only on depth). Returns the removed
    layers' indices in the original numbering, in removal order."""
    if len(texts) == 0:
        raise DistillError("stage=prune: no texts to measure the layers' importance on")
    stack = layer_stack(model)
    if not 0 <= count < len(stack):
        raise DistillError(f"prune.drop_layers={count}: the student has {len(stack)} layers, so drop between 0 "
                           f"and {len(stack) - 1}")
    total = len(stack)
    original = list(range(total))  # the original index of each layer still in the stack
    removed = []
    for _ in tqdm(range(count), desc="prune: layers", unit="layer"):
        losses = []
        for j in range(len(stack)):
            layer = stack[j]
            del stack[j]
            losses.append(distillation_loss(model, tokenizer, texts, probs, temperature, max_length))
            stack.insert(j, layer)
        j = int(np.argmin(losses))
        log.info("prune: dropping layer %d of the original %d (loss %.4f without it; without each of layers %s: "
                 "%s)", original[j], total, losses[j], ", ".join(map(str, original)),
                 ", ".join(f"{x:.4f}" for x in losses))
        del stack[j]
        removed.append(original.pop(j))
    for key in ("num_hidden_layers", "n_layers"):  # DistilBERT calls it n_layers
        if hasattr(model.config, key):
            setattr(model.config, key, len(stack))
    return removed
