"""Sentence embeddings the way sentence-transformers computes them, without depending on that package.

Mean of the token states under the attention mask, then L2 normalisation (all-MiniLM-L6-v2,
all-mpnet-base-v2). Used by the embedding-similarity teacher and by the embedding + logistic
regression student.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModel

from .device import batches
from .models import load_model


class SentenceEncoder:
    """A bare encoder (no head) that turns texts into L2-normalised float32 [N, D] embeddings."""

    def __init__(self, ref: str, device: torch.device, dtype: torch.dtype = torch.float32, max_length: int = 512,
                 batch_size: int = 64, key: str = "teacher.model", name: str = "encoder"):
        self.ref, self.device, self.dtype, self.batch_size, self.name = ref, device, dtype, batch_size, name
        self.tokenizer, self.model = load_model(ref, key, AutoModel, device, dtype)
        self.max_length = self._max_length(max_length)
        self.input_names = list(self.tokenizer.model_input_names)
        self.truncated = 0
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 [N, D] sentence embeddings, rows in input order."""
        texts = list(texts)
        batch_size = batch_size or self.batch_size
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        features = {name: enc[name] for name in self.input_names if name in enc}
        lengths = np.array([len(ids) for ids in features["input_ids"]])
        self.truncated += int((lengths >= self.max_length).sum())  # texts whose end was cut
        # Longest first: little padding per batch, and memory trouble shows at once.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with tqdm(total=len(texts), desc=self.name, unit="text", disable=not progress, leave=False) as bar:
            for rows in batches(order, lengths, batch_size, None):
                batch = self.tokenizer.pad({k: [v[i] for i in rows] for k, v in features.items()},
                                           return_tensors="pt")
                out[rows] = self._encode(batch)
                bar.update(len(rows))
        return out

    @torch.inference_mode()
    def _encode(self, batch) -> np.ndarray:
        batch = batch.to(self.device)
        # Pool in float32 so half-precision weights cost no accuracy in the sums and the norm.
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1).cpu().numpy()

    def _max_length(self, max_length: int) -> int:
        """max_length capped by the tokenizer, the position table and sentence-transformers' limit."""
        # The encoder was trained on texts up to max_seq_length (256 for MiniLM, 384 for mpnet), which
        # sentence-transformers reads from this file; the tokenizer itself claims 512.
        st_config = Path(self.tokenizer.name_or_path) / "sentence_bert_config.json"
        st_limit = json.loads(st_config.read_text()).get("max_seq_length") if st_config.is_file() else None
        positions = getattr(self.model.config, "max_position_embeddings", None)
        return min(n for n in (int(max_length), self.tokenizer.model_max_length, positions, st_limit) if n)

    def num_parameters(self) -> int:
        return self.model.num_parameters()
