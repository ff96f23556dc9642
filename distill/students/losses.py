"""Distillation losses: cross-entropy against a teacher's (softened) probability distribution."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def soft_cross_entropy(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 1.0,
                       weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean over the batch of -sum_k p_T(k) log q_T(k), times T² (Hinton et al., 2015).

    p_T ∝ p^(1/T) is the teacher softened by T, q_T = softmax(student_logits / T). `weights` [B], if given,
    turns the mean into a weighted mean.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    # float32 even under bf16 autocast: log-probabilities of small classes lose too much in half precision
    logits = student_logits.float()
    # softening in log space: teachers output exact zeros, and p ** (1/T) of a clamped p stays finite
    teacher_log = torch.log(teacher_probs.float().clamp_min(1e-8)) / temperature
    targets = torch.softmax(teacher_log, dim=-1)
    per_example = -(targets * F.log_softmax(logits / temperature, dim=-1)).sum(dim=-1)
    if weights is None:
        loss = per_example.mean()
    else:
        weights = weights.to(per_example)
        loss = (weights * per_example).sum() / weights.sum().clamp_min(1e-12)
    # the gradient of the softened loss shrinks as 1/T²; scaling keeps it comparable across temperatures
    return loss * temperature ** 2


def hard_cross_entropy(student_logits: torch.Tensor, targets: torch.Tensor,
                       weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Cross-entropy against class ids [B]; `weights` [B], if given, makes it a weighted mean."""
    per_example = F.cross_entropy(student_logits.float(), targets, reduction="none")
    if weights is None:
        return per_example.mean()
    weights = weights.to(per_example)
    return (weights * per_example).sum() / weights.sum().clamp_min(1e-12)


def multi_label_cross_entropy(student_logits: torch.Tensor, targets: torch.Tensor,
                              weights: Optional[torch.Tensor] = None,
                              pos_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Multi-label: binary cross-entropy of each label's sigmoid against its target (the teacher's own
    probability of that label, or 0/1 of its label set), averaged over the labels; `weights` [B] as above;
    `pos_weight` [K]: how much each label's positives weigh against its negatives (train.label_balance)."""
    if pos_weight is not None:
        pos_weight = pos_weight.to(student_logits.device, torch.float32)
    per_example = F.binary_cross_entropy_with_logits(student_logits.float(), targets.float(), reduction="none",
                                                     pos_weight=pos_weight).mean(dim=-1)
    if weights is None:
        return per_example.mean()
    weights = weights.to(per_example)
    return (weights * per_example).sum() / weights.sum().clamp_min(1e-12)
