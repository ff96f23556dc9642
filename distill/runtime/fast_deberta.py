"""Exact, cheaper relative attention for DeBERTa-v2/v3 models (teachers and students) at inference.

transformers' `DisentangledSelfAttention.disentangled_attention_bias` projects all 2 x position_buckets
(512) relative-position embeddings in every layer, copies them once per sequence in the batch
(`.repeat(B, 1, 1)`), multiplies every query and key against all 512 and then gathers the few columns it
needs. For the short texts zero-shot labelling sees (20-60 tokens) that is about half of the model's
time on a CPU. This version projects only the relative positions that occur in the batch and
broadcasts them over it instead of copying: the same dot products, so the same logits (to float
rounding), at a fraction of the cost. Which rows are needed follows from the sequence length alone, so
the patch also traces into ONNX exports (distill.students.onnx) with dynamic lengths. Anything unusual (query
and key of different lengths, a precomputed 4-D relative_pos) falls back to the original method.

When every relative position of a sequence is exact (length <= position_buckets / 2 + 1, always the case
for students cut at 128 tokens and for most NLI pairs), the whole self-attention is replaced
(`skewed_attention`): the c2p and p2c terms are read off the [L, 2L] products by the relative-shift
("skew") of Transformer-XL, a reshape and two slices, instead of a gather with an index expanded to
[B, H, L, L]; the 1/sqrt(d) scale is applied to the query and to the position queries instead of to
the [L, L] scores and the transposed keys. Same dot products, so the same logits to float rounding.

A sequence classifier reads only the first token ([CLS]) of the last layer, so `first_token_only` has
that layer compute only that token's row (its keys and values still come from every token): the
query, attention output and feed-forward of the other rows are skipped, about a twelfth of a
12-layer model's arithmetic, with the same logits to float rounding.
"""
from __future__ import annotations

import logging
import math
import types

import torch

log = logging.getLogger(__name__)


def install(model: torch.nn.Module, max_length: int | None = None, bf16_products: bool = False) -> int:
    """Patch every DeBERTa-v2 self-attention module of `model`; returns how many were patched.

    `max_length`: the longest input the model will be given, for ONNX export: a traced graph cannot
    choose its path by length, so the skewed attention goes into it only when every length up to
    `max_length` is exact; otherwise the compact gather does.
    `bf16_products`: compiled in bf16 on a CPU, keep the attention products in bf16 (where eager bf16
    is fast: cpu_bf16's verdict) instead of float32 (float32_products)."""
    try:
        from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention
    except ImportError:  # a transformers without DeBERTa-v2: nothing to patch
        return 0
    patched = 0
    for module in model.modules():
        if isinstance(module, DisentangledSelfAttention) and module.relative_attention:
            original = module.disentangled_attention_bias
            module.disentangled_attention_bias = types.MethodType(_compact_bias(original), module)
            module.forward = types.MethodType(_skewed_forward(module.forward), module)
            module.distill_max_length = max_length
            module.distill_bf16_products = bf16_products
            patched += 1
    if patched:
        log.debug("distill's relative attention installed in %d layers", patched)
    return patched


def _compact_bias(original):
    def bias(self, query_layer, key_layer, relative_pos, rel_embeddings, scale_factor):
        square = query_layer.size(-2) == key_layer.size(-2)
        if relative_pos is None or not square or relative_pos.dim() != 3 or relative_pos.size(0) != 1:
            return original(query_layer, key_layer, relative_pos, rel_embeddings, scale_factor)
        return compact_bias(self, query_layer, key_layer, relative_pos[0], rel_embeddings, scale_factor)
    return bias


def _skewed_forward(original):
    def forward(self, hidden_states, attention_mask, output_attentions=False, query_states=None,
                relative_pos=None, rel_embeddings=None):
        usual = (relative_pos is not None and relative_pos.dim() == 3 and relative_pos.size(0) == 1
                 and rel_embeddings is not None and attention_mask.dim() == 4)
        if not (output_attentions or query_states is not None or self.training or not usual):
            if skew_fits(self, hidden_states.size(-2)):
                return skewed_attention(self, hidden_states, attention_mask, rel_embeddings), None
            if float32_products(self, hidden_states):
                return gathered_attention(self, hidden_states, attention_mask, relative_pos, rel_embeddings), None
        return original(hidden_states, attention_mask, output_attentions, query_states=query_states,
                        relative_pos=relative_pos, rel_embeddings=rel_embeddings)
    return forward


def skew_limit(self) -> int:
    """The longest sequence whose relative positions are all exact (no log bucket, no clamp), so that
    c2p / p2c column r - (L-1) is relative distance r for every row."""
    limit = self.pos_ebd_size - 1
    if self.position_buckets > 0:
        limit = min(limit, self.position_buckets // 2 + 1)
    return limit


def skew_fits(self, length) -> bool:
    if torch.jit.is_tracing():  # the graph must be right at every length it will be given
        return self.distill_max_length is not None and self.distill_max_length <= skew_limit(self)
    return length <= skew_limit(self)


def skewed_attention(self, hidden, mask, rel_embeddings):
    """DeBERTa's disentangled self-attention (eval, exact relative positions) -> context [B, L, hidden]."""
    length, span = hidden.size(1), self.pos_ebd_size
    query, key, value, factor = _projections(self, hidden)
    scale = math.sqrt(query.size(-1) * factor)
    query = query / scale
    scores = torch.matmul(query, key.transpose(-1, -2))
    if "c2p" in self.pos_att_type:  # column c of row i: distance i - j = L-1-c, table row span + L-1-c
        rows = rel_embeddings[span - length:span + length].flip(0)
        pos_key = _position_keys(self, rows)
        scores = scores + _skew(_by_head(query, pos_key.to(query.dtype)), length)
    if "p2c" in self.pos_att_type:  # key i, column c: distance j - i = c-(L-1), table row span + c-(L-1)
        rows = rel_embeddings[span - length + 1:span + length + 1]
        pos_query = _position_queries(self, rows)
        scores = scores + _skew(_by_head(key, pos_query.to(key.dtype) / scale), length).transpose(-1, -2)
    return _context(scores, mask, value, hidden.dtype)


def first_token_only(model: torch.nn.Module) -> bool:
    """Have the last layer of a DeBERTa-v2 sequence classifier (`install`ed) compute only its first
    token, the one the classification head reads; True when patched. Eval only, and only where the
    skewed attention applies (exact relative positions); other calls run the layer as it was. The
    model's last hidden state is then [B, 1, hidden]: only for a model whose logits are all that is read."""
    try:
        from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2ForSequenceClassification
    except ImportError:
        return False
    if not isinstance(model, DebertaV2ForSequenceClassification) or getattr(model.deberta, "z_steps", 0) > 1:
        return False
    layers = model.deberta.encoder.layer
    attention = layers[-1].attention.self
    if len(layers) < 2 or not hasattr(attention, "distill_max_length"):  # layer 0 may have a conv after it
        return False
    layers[-1].forward = types.MethodType(_first_token_forward(layers[-1].forward), layers[-1])
    return True


def _first_token_forward(original):
    def forward(self, hidden_states, attention_mask, query_states=None, relative_pos=None, rel_embeddings=None,
                output_attentions=False):
        attention = self.attention.self
        if (self.training or output_attentions or query_states is not None or rel_embeddings is None
                or attention_mask.dim() != 4 or torch.jit.is_tracing()
                or not skew_fits(attention, hidden_states.size(-2))):
            return original(hidden_states, attention_mask, query_states=query_states, relative_pos=relative_pos,
                            rel_embeddings=rel_embeddings, output_attentions=output_attentions)
        first = hidden_states[:, :1]
        context = first_token_attention(attention, hidden_states, attention_mask, rel_embeddings)
        attention_output = self.attention.output(context, first)
        return self.output(self.intermediate(attention_output), attention_output), None
    return forward


def first_token_attention(self, hidden, mask, rel_embeddings):
    """The first row of `skewed_attention` -> context [B, 1, hidden]. Its relative distance to token j is
    -j for both terms: c2p reads table row span - j with the first query, p2c the same row with key j."""
    length, span, heads = hidden.size(1), self.pos_ebd_size, self.num_attention_heads
    query = _split(self.query_proj(hidden[:, :1]), heads)
    key, value = _split(self.key_proj(hidden), heads), _split(self.value_proj(hidden), heads)
    if float32_products(self, query):
        query, key, value = query.float(), key.float(), value.float()
    scale = math.sqrt(query.size(-1) * _score_factor(self))
    query = query / scale
    scores = torch.matmul(query, key.transpose(-1, -2))  # [B, H, 1, L]
    rows = rel_embeddings[span - length + 1:span + 1].flip(0)  # row j: table row span - j
    if "c2p" in self.pos_att_type:
        pos_key = _position_keys(self, rows)
        scores = scores + torch.matmul(query, pos_key.to(query.dtype).transpose(-1, -2))
    if "p2c" in self.pos_att_type:
        pos_query = _position_queries(self, rows)
        scores = scores + (key * pos_query.to(key.dtype)).sum(-1).unsqueeze(-2) / scale
    return _context(scores, mask[:, :, :1], value, hidden.dtype)


def _by_head(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x [B, H, L, d] against the position table [1, H, R, d] shared by the batch -> [B, H, L, R]: one
    product per head over all B*L rows (H big products instead of B*H small ones; the same dot products)."""
    batch, heads, length, dim = x.shape
    rows = x.transpose(0, 1).reshape(heads, batch * length, dim)
    return torch.bmm(rows, table[0].transpose(-1, -2)).view(heads, batch, length, -1).transpose(0, 1)


def gathered_attention(self, hidden, mask, relative_pos, rel_embeddings):
    """The same attention past the skew's reach (log-bucketed relative positions): the c2p / p2c terms
    gathered (compact_bias). Used compiled in bf16 on a CPU, where its products must run in float32
    (float32_products); elsewhere transformers' own forward, with compact_bias, does this."""
    batch, length = hidden.size(0), hidden.size(1)
    query, key, value, factor = _projections(self, hidden)
    heads, dim = query.size(1), query.size(-1)
    scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(dim * factor)
    bias = compact_bias(self, query.reshape(-1, length, dim), key.reshape(-1, length, dim), relative_pos[0],
                        rel_embeddings, factor)
    return _context(scores + bias.view(batch, heads, length, length), mask, value, hidden.dtype)


def _projections(self, hidden):
    """(query, key, value) [B, H, L, d] (float32 where float32_products says so) and the score scale factor."""
    heads = self.num_attention_heads
    query, key, value = (_split(proj(hidden), heads) for proj in (self.query_proj, self.key_proj, self.value_proj))
    if float32_products(self, query):
        query, key, value = query.float(), key.float(), value.float()
    return query, key, value, _score_factor(self)


def _context(scores, mask, value, dtype):
    """Masked softmax of `scores` [B, H, L, L] over `value` -> [B, L, hidden] in `dtype`."""
    scores = scores.masked_fill(~mask.bool(), torch.finfo(scores.dtype).min)
    context = torch.matmul(torch.softmax(scores, -1), value)
    return context.transpose(1, 2).reshape(context.size(0), context.size(2), -1).to(dtype)


def float32_products(self, x: torch.Tensor) -> bool:
    """Compiled for a CPU (distill/runtime/compiled.py), bf16 attention products run in float32 unless the
    layer was installed with `bf16_products`: inductor has no bf16 batched-product kernel of its own,
    and aten's runs on oneDNN, slower than float32 where oneDNN is kept off AMX (see cpu_bf16); where
    eager bf16 is fast (AVX512-BF16 without the AMX trouble), bf16 products are about 12% faster on a
    teacher than float32 ones."""
    return (x.dtype == torch.bfloat16 and x.device.type == "cpu" and torch.compiler.is_compiling()
            and not getattr(self, "distill_bf16_products", False))


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, hidden] -> [B, heads, L, head_dim]"""
    return x.view(x.size(0), x.size(1), heads, -1).transpose(1, 2)


def _skew(x: torch.Tensor, length) -> torch.Tensor:
    """[..., L, 2L] -> [..., L, L] with out[..., i, j] = x[..., i, j - i + L - 1] (the relative shift): in
    the flattened rows, element (i, j - i + L - 1) sits at i * (2L - 1) + j + L - 1, so it is a slice and
    a reshape, views in torch, with no index tensor."""
    flat = x.flatten(-2)[..., length - 1:length - 1 + length * (2 * length - 1)]
    return flat.reshape(x.size(0), x.size(1), length, 2 * length - 1)[..., :length]


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
        pos_key = _position_keys(self, rel_emb)
        pos_key = pos_key.to(query_layer.dtype)
        c2p = torch.matmul(query_layer.view(-1, heads, length, dim), pos_key.transpose(-1, -2))
        score = score + torch.gather(c2p, -1, (c2p_pos - lo).expand(shape)) / scale
    if "p2c" in self.pos_att_type:
        pos_query = _position_queries(self, rel_emb)
        pos_query = pos_query.to(key_layer.dtype)
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


def _score_factor(self) -> int:
    """DeBERTa scales scores by sqrt(head_dim * factor): one term for content, one per position term."""
    return 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)


def _position_keys(self, rows: torch.Tensor) -> torch.Tensor:
    """Relative-position table rows [S, hidden] projected as keys (c2p) -> [1, heads, S, head_dim]."""
    return _heads(self.key_proj(rows) if self.share_att_key else self.pos_key_proj(rows), self.num_attention_heads)


def _position_queries(self, rows: torch.Tensor) -> torch.Tensor:
    """Relative-position table rows [S, hidden] projected as queries (p2c) -> [1, heads, S, head_dim]."""
    return _heads(self.query_proj(rows) if self.share_att_key else self.pos_query_proj(rows), self.num_attention_heads)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[S, hidden] -> [1, heads, S, head_dim], shared by every sequence of the batch by broadcasting."""
    return x.view(x.size(0), heads, -1).permute(1, 0, 2).unsqueeze(0)
