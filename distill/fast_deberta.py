"""Exact, cheaper relative attention for DeBERTa-v2/v3 models (teachers and students) at inference.

transformers' `DisentangledSelfAttention.disentangled_attention_bias` projects all 2 x position_buckets
(512) relative-position embeddings in every layer, copies them once per sequence in the batch
(`.repeat(B, 1, 1)`), multiplies every query and key against all 512 and then gathers the few columns it
needs. For the short texts zero-shot labelling sees (20-60 tokens) that is about half of the model's
time on a CPU. This version projects only the relative positions that occur in the batch and
broadcasts them over it instead of copying: the same dot products, so the same logits (to float
rounding), at a fraction of the cost. Which rows are needed follows from the sequence length alone, so
the patch also traces into ONNX exports (distill.export) with dynamic lengths. Anything unusual (query
and key of different lengths, a precomputed 4-D relative_pos) falls back to the original method.
"""
from __future__ import annotations

import logging
import types

import torch

log = logging.getLogger(__name__)


def install(model: torch.nn.Module) -> int:
    """Patch every DeBERTa-v2 self-attention module of `model`; returns how many were patched."""
    try:
        from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention
    except ImportError:  # a transformers without DeBERTa-v2: nothing to patch
        return 0
    patched = 0
    for module in model.modules():
        if isinstance(module, DisentangledSelfAttention) and module.relative_attention:
            original = module.disentangled_attention_bias
            module.disentangled_attention_bias = types.MethodType(_compact_bias(original), module)
            patched += 1
    if patched:
        log.debug("compact relative attention installed in %d layers", patched)
    return patched


def _compact_bias(original):
    def bias(self, query_layer, key_layer, relative_pos, rel_embeddings, scale_factor):
        square = query_layer.size(-2) == key_layer.size(-2)
        if relative_pos is None or not square or relative_pos.dim() != 3 or relative_pos.size(0) != 1:
            return original(query_layer, key_layer, relative_pos, rel_embeddings, scale_factor)
        return compact_bias(self, query_layer, key_layer, relative_pos[0], rel_embeddings, scale_factor)
    return bias


def compact_bias(self, query_layer, key_layer, rel, rel_embeddings, scale_factor):
    """c2p + p2c attention bias [B*H, L, L] from only the relative positions present in `rel` [L, L]."""
    span, heads = self.pos_ebd_size, self.num_attention_heads
    bh, length, dim = query_layer.shape
    c2p_pos = torch.clamp(rel.long() + span, 0, span * 2 - 1)
    p2c_pos = torch.clamp(-rel.long() + span, 0, span * 2 - 1)
    lo, hi = _row_range(span, length)
    rel_emb = rel_embeddings[lo:hi + 1]  # [S, hidden]: every row the gathers below can read
    scale = torch.sqrt(torch.tensor(dim, dtype=torch.float) * scale_factor).to(query_layer.dtype)
    shape = (bh // heads, heads, length, length)
    score = 0
    if "c2p" in self.pos_att_type:
        pos_key = _heads(self.key_proj(rel_emb) if self.share_att_key else self.pos_key_proj(rel_emb), heads)
        c2p = torch.matmul(query_layer.view(-1, heads, length, dim), pos_key.transpose(-1, -2))
        score = score + torch.gather(c2p, -1, (c2p_pos - lo).expand(shape)) / scale
    if "p2c" in self.pos_att_type:
        pos_query = _heads(self.query_proj(rel_emb) if self.share_att_key else self.pos_query_proj(rel_emb), heads)
        p2c = torch.matmul(key_layer.view(-1, heads, length, dim), pos_query.transpose(-1, -2))
        score = score + torch.gather(p2c, -1, (p2c_pos - lo).expand(shape)).transpose(-1, -2) / scale
    return score.reshape(bh, length, length)


def _row_range(span: int, length):
    """First and last relative-embedding row a length-L sequence can reach: positions (buckets included)
    lie in [-(L-1), L-1], so rows in [span-(L-1), span+(L-1)], clamped to the table.

    From the length alone, with no look at the positions' values: no host sync, and under ONNX
    export (tracing) the length is a traced size, so the graph stays right for every sequence length."""
    lo, hi = span - length + 1, span + length - 1
    if torch.jit.is_tracing():
        return torch.clamp(lo, min=0), torch.clamp(hi, max=2 * span - 1)
    return max(lo, 0), min(hi, 2 * span - 1)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[S, hidden] -> [1, heads, S, head_dim], shared by every sequence of the batch by broadcasting."""
    return x.view(x.size(0), heads, -1).permute(1, 0, 2).unsqueeze(0)
